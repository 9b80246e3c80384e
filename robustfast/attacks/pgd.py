"""Projected gradient descent (Madry et al., 2018): L∞ or L2, random restarts, targeted, CE or CW loss."""
from __future__ import annotations

import torch

from robustfast._util.checks import opmath_dtype, per_sample
from robustfast.attacks.base import Attack, check_number
from robustfast.attacks.loss import LOSSES, attack_loss
from robustfast.ops import pgd_random_init, pgd_step
from robustfast.ops.pgd_step import MAX_RADIUS

NORMS = ("Linf", "L2")


class PGD(Attack):
    """`adv = PGD(model, eps=8/255, alpha=2/255, steps=10)(images, labels)`.

    Images are N×C×H×W in [0, 1]; put normalisation inside the model (robustfast.models.Normalized).
    With `targeted=True`, `labels` are the target classes. All `restarts` run batched in one forward; per
    sample, the returned restart is one that fools the model, else the one with the highest loss.
    `early_stop=True` freezes a sample once it fools the model (a mask, no host synchronisation).
    `amp=True` runs the model under bf16 autocast. `compile=True` compiles the attack step with torch.compile;
    a string picks the torch.compile mode, e.g. `compile="reduce-overhead"` for CUDA graphs on a GPU.
    `channels_last=True` converts the model to channels_last in place (as `model.to(memory_format=...)` does)
    and runs the attack in that layout: often faster for convolutional models.
    The model runs in eval mode with its parameters frozen during the attack; its state is restored after.
    """

    def __init__(self, model: torch.nn.Module, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10,
                 norm: str = "Linf", random_start: bool = True, restarts: int = 1, targeted: bool = False,
                 loss: str = "ce", seed: int = 0, amp: bool = False, compile: bool | str = False,
                 channels_last: bool = False, early_stop: bool = False):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.eps = check_number(eps, "eps", 0.0, maximum=MAX_RADIUS)
        self.alpha = check_number(alpha, "alpha", 0.0, maximum=MAX_RADIUS)
        self.steps = check_number(steps, "steps", 1, integer=True)
        super().__init__(model, restarts=restarts, seed=seed, amp=amp, compile=compile, channels_last=channels_last)
        self.norm, self.loss, self.targeted = norm, loss, bool(targeted)
        self.random_start, self.early_stop = bool(random_start), bool(early_stop)
        self._step = self.compiled(self._eager_step)

    def __repr__(self) -> str:
        return (f"PGD(norm={self.norm}, eps={self.eps:.4g}, alpha={self.alpha:.4g}, steps={self.steps}, "
                f"restarts={self.restarts}, loss={self.loss}, targeted={self.targeted})")

    def _fooled(self, logits, labels):
        hit = logits.argmax(dim=1) == labels
        return hit if self.targeted else ~hit

    def _eager_step(self, x, x0, labels, alpha, eps, active):
        x = x.detach().requires_grad_(True)
        logits = self.forward(x)
        (grad,) = torch.autograd.grad(attack_loss(logits, labels, self.loss, self.targeted).sum(), x)
        if self.early_stop:
            active = active & ~self._fooled(logits.detach(), labels)
        return pgd_step(x.detach(), grad, x0, alpha=alpha, eps=eps, norm=self.norm, active=active), active

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, r = images.shape[0], self.restarts
        x0, y = self.tile_restarts(images, labels)
        dtype = opmath_dtype(images.dtype)
        eps = per_sample(self.eps, n * r, "eps", dtype, images.device)
        alpha = per_sample(self.alpha, n * r, "alpha", dtype, images.device)
        active = torch.ones(n * r, dtype=torch.bool, device=images.device)
        generator = self.generator(images.device)
        x = pgd_random_init(x0, eps=eps, norm=self.norm, generator=generator) if self.random_start else x0
        for _ in range(self.steps):
            x, active = self._step(x, x0, y, alpha, eps, active)
        if r == 1:
            return x
        with torch.no_grad():
            logits = self.forward(x)
            key = attack_loss(logits, y, self.loss, self.targeted)
            key = torch.where(self._fooled(logits, y), torch.full_like(key, float("inf")), key)
        return self.pick_restart(x, key, n)
