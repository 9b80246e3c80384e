"""Projected gradient descent (Madry et al., 2018): L∞ or L2, random restarts, targeted, CE or CW loss."""
from __future__ import annotations

import numbers

import torch

from robustfast._util.checks import check_images, check_labels, opmath_dtype, per_sample
from robustfast._util.frozen import frozen_eval, model_device
from robustfast.ops import pgd_random_init, pgd_step
from robustfast.reference.pgd_attack import attack_loss

LOSSES = ("ce", "cw")
NORMS = ("Linf", "L2")


def _check_number(value, name: str, minimum: float, integer: bool = False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= minimum:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} >= {minimum}, got {value!r}")
    return value


class PGD:
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
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.model = model
        self.eps = _check_number(eps, "eps", 0.0)
        self.alpha = _check_number(alpha, "alpha", 0.0)
        self.steps = _check_number(steps, "steps", 1, integer=True)
        self.restarts = _check_number(restarts, "restarts", 1, integer=True)
        self.seed = _check_number(seed, "seed", 0, integer=True)
        self.norm, self.loss, self.targeted = norm, loss, bool(targeted)
        self.random_start, self.amp, self.early_stop = bool(random_start), bool(amp), bool(early_stop)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if compile:
            mode = compile if isinstance(compile, str) else None
            self._step = torch.compile(self._eager_step, mode=mode)
        else:
            self._step = self._eager_step

    def __repr__(self) -> str:
        return (f"PGD(norm={self.norm}, eps={self.eps:.4g}, alpha={self.alpha:.4g}, steps={self.steps}, "
                f"restarts={self.restarts}, loss={self.loss}, targeted={self.targeted})")

    def _check(self, images, labels) -> None:
        check_images(images)
        check_labels(labels, images.shape[0], images.device)
        device = model_device(self.model)
        if device is not None and device != images.device:
            raise ValueError(f"the model is on {device} but images are on {images.device}; move one of them")

    def _forward(self, x):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x).float()

    def _fooled(self, logits, labels):
        hit = logits.argmax(dim=1) == labels
        return hit if self.targeted else ~hit

    def _eager_step(self, x, x0, labels, alpha, eps, active):
        x = x.detach().requires_grad_(True)
        logits = self._forward(x)
        (grad,) = torch.autograd.grad(attack_loss(logits, labels, self.loss, self.targeted).sum(), x)
        if self.early_stop:
            active = active & ~self._fooled(logits.detach(), labels)
        return pgd_step(x.detach(), grad, x0, alpha=alpha, eps=eps, norm=self.norm, active=active), active

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._check(images, labels)
        n, r = images.shape[0], self.restarts
        x0 = images.detach().repeat(r, 1, 1, 1).contiguous(memory_format=self.memory_format)
        y = labels.long().repeat(r)
        dtype = opmath_dtype(images.dtype)
        eps = per_sample(self.eps, n * r, "eps", dtype, images.device)
        alpha = per_sample(self.alpha, n * r, "alpha", dtype, images.device)
        active = torch.ones(n * r, dtype=torch.bool, device=images.device)
        generator = torch.Generator(device=images.device).manual_seed(self.seed)
        x = pgd_random_init(x0, eps=eps, norm=self.norm, generator=generator) if self.random_start else x0
        with frozen_eval(self.model), torch.enable_grad():  # callers often hold no_grad around evaluation
            for _ in range(self.steps):
                x, active = self._step(x, x0, y, alpha, eps, active)
            if r == 1:
                return x
            with torch.no_grad():
                logits = self._forward(x)
                key = attack_loss(logits, y, self.loss, self.targeted)
                key = torch.where(self._fooled(logits, y), torch.full_like(key, float("inf")), key)
        best = key.view(r, n).argmax(dim=0)
        return x.view(r, n, *images.shape[1:])[best, torch.arange(n, device=images.device)]
