"""The attacks of adversarial training, run the robust_wrn spec's way (§2), and the PGD-20 used for checkpoint
selection (§3). The caller holds the model in eval mode with frozen weights (robustfast._util.frozen.frozen_eval).

Every step is one forward, one input-gradient and the fused `pgd_step` op (sign step, ε-ball projection, [0, 1]
clamp); TRADES's KL ascent goes through the fused `adv_loss` op. No host read inside the loops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustfast.ops import adv_loss, pgd_random_init, pgd_step

METHODS = ("pgd-at", "trades", "mart", "fgsm-rs")
TRADES_INIT_STD = 0.001


def _logits(model, x, amp: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        return model(x).float()


def start_noise(method: str, shape, generator: torch.Generator, device) -> torch.Tensor:
    """The noise of the attack's start: U(−1, 1) for fgsm-rs, N(0, I) for the others."""
    if method == "fgsm-rs":
        return 2 * torch.rand(shape, generator=generator, device=device) - 1
    return torch.randn(shape, generator=generator, device=device)


def training_attack(model, x0: torch.Tensor, labels: torch.Tensor, method: str, eps: float, alpha: float,
                    steps: int, noise: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """The adversarial batch `method` trains on, from the start noise `noise` (`start_noise`).

    pgd-at, mart: start x0 + α·N(0, I) (no initial projection), ascend CE. trades: z0 = f(x0) fixed, start
    x0 + 0.001·N(0, I), ascend Σ KL(softmax(z0) ‖ softmax(f(x))). fgsm-rs (Wong et al. 2020): a uniform start in
    the ε-ball clamped to [0, 1], then one step of α (1.25·ε by default, set by the caller) on CE.
    """
    n = x0.shape[0]
    x0 = x0.detach()
    eps_t = torch.full((n,), eps, dtype=torch.float64 if x0.dtype == torch.float64 else torch.float32,
                       device=x0.device)
    alpha_t = torch.full_like(eps_t, alpha)
    noise = noise.to(x0.dtype)
    target = None
    if method == "trades":
        with torch.no_grad():
            target = _logits(model, x0, amp)
        x = x0 + TRADES_INIT_STD * noise
    elif method == "fgsm-rs":
        x = (x0 + eps * noise).clamp(0, 1)
        steps = 1
    else:
        x = x0 + alpha * noise
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        logits = _logits(model, x, amp)
        if target is None:
            loss = F.cross_entropy(logits, labels, reduction="sum")
        else:
            loss = adv_loss(target, logits, labels, "kl").sum()
        (grad,) = torch.autograd.grad(loss, x)
        x = pgd_step(x.detach(), grad, x0, alpha=alpha_t, eps=eps_t)
    return x.detach()


def pgd20_correct(model, x0: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float, steps: int = 20,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (clean correct, PGD correct) flags of the spec's PGD-20: uniform start in the ε-ball, `steps`
    sign steps of α on CE, fp32."""
    n = x0.shape[0]
    eps_t = torch.full((n,), eps, dtype=torch.float32, device=x0.device)
    alpha_t = torch.full_like(eps_t, alpha)
    with torch.no_grad():
        clean = model(x0).argmax(1) == labels
    x = pgd_random_init(x0, eps=eps_t, generator=generator)
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
        x = pgd_step(x.detach(), grad, x0, alpha=alpha_t, eps=eps_t)
    with torch.no_grad():
        robust = model(x).argmax(1) == labels
    return clean, clean & robust
