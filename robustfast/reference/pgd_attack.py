"""The textbook PGD loop in plain PyTorch, one restart at a time: the oracle for robustfast.attacks.PGD."""
import torch
import torch.nn.functional as F

from robustfast.reference.pgd_step import pgd_random_init, pgd_step


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per sample."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def attack_loss(logits, labels, loss: str, targeted: bool) -> torch.Tensor:
    """Per-sample loss the attack ascends."""
    if loss == "ce":
        value = F.cross_entropy(logits, labels, reduction="none")
        return -value if targeted else value
    value = margin(logits, labels)
    return value if targeted else -value


def pgd_attack(model, images, labels, eps, alpha, steps, norm="Linf", random_start=True, targeted=False,
               loss="ce", generator=None):
    n = images.shape[0]
    eps_t = torch.full((n,), eps, dtype=images.dtype, device=images.device)
    alpha_t = torch.full((n,), alpha, dtype=images.dtype, device=images.device)
    active = torch.ones(n, dtype=torch.bool, device=images.device)
    x0 = images.detach()
    x = pgd_random_init(x0, eps_t, norm, 0.0, 1.0, generator) if random_start else x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            value = attack_loss(model(x), labels, loss, targeted).sum()
        (grad,) = torch.autograd.grad(value, x)
        x = pgd_step(x.detach(), grad, x0, active, alpha_t, eps_t, norm, 0.0, 1.0)
    return x
