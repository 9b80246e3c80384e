"""The textbook PGD loop in plain PyTorch, one restart at a time, as published attack code runs it: the oracle
for robustfast.attacks.PGD and the baseline of its benchmark."""
import torch

from robustfast.attacks.loss import attack_loss
from robustfast.reference.pgd_step import pgd_random_init, pgd_step


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
