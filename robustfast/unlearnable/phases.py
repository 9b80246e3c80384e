"""The three phases of one round of the min-min search, on device tensors, without host synchronisation.

- `train_surrogate`: a few SGD steps of the surrogate on x + δ (the θ phase);
- `minimize_noise`: sign descent on the input (the δ phase of one batch), through the fused `pgd_step` op with
  the gradient negated, gradients taken w.r.t. the input only;
- `class_mean_update`: the class-wise rule δ_k ← clamp(mean of η_i over the batch's samples of class k, ±ε);
- `count_errors`: the stop test's misclassifications on x + δ;

The caller puts the model in the right mode (train for the θ phase; eval with frozen parameters otherwise).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustfast.ops import pgd_step

# Bounds for the last step: η = x' − x₀ must be taken *before* the [0, 1] clamp (spec §2b), and with
# ε ≤ 1 these never bind, so pgd_step returns x₀ + clip(x″ − x₀, ±ε) unclamped.
_OPEN_LOWER, _OPEN_UPPER = -1.0, 2.0


def _logits(model: nn.Module, x: torch.Tensor, amp: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        return model(x).float()


def train_surrogate(model, optimizer, inputs, grad_clip: float | None, amp: bool) -> None:
    """One SGD step per (x, y) in `inputs` (x already perturbed), with global grad-norm clipping."""
    for x, y in inputs:
        loss = F.cross_entropy(_logits(model, x, amp), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()


def minimize_noise(model, x0: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, *, alpha: torch.Tensor,
                   eps: torch.Tensor, eps_value: float, steps: int, amp: bool) -> torch.Tensor:
    """η after `steps` sign-descent steps on CE(f(x'), y) (batch mean) from x' = clamp(x₀ + δ, 0, 1):

        x″ = x' − α·sign(∇x' CE),  η = clip(x″ − x₀, ±ε),  x' = clamp(x₀ + η, 0, 1).

    Returns η of the last step, taken before the [0, 1] clamp (so x₀ + η may leave [0, 1] by up to α).
    alpha, eps: per-sample tensors of shape (N,). The model must be in eval mode with frozen parameters.
    """
    x = (x0 + delta).clamp_(0, 1)
    for s in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(_logits(model, x, amp), y)
        (grad,) = torch.autograd.grad(loss, x)
        last = s == steps - 1
        # Descent: pgd_step ascends along sign(grad), so hand it the negated gradient.
        x = pgd_step(x.detach(), grad.neg_(), x0, alpha=alpha, eps=eps,
                     lower=_OPEN_LOWER if last else 0.0, upper=_OPEN_UPPER if last else 1.0)
    # x₀ + η − x₀ can round one ulp past ε: clip again so the bound holds exactly.
    return (x - x0).clamp_(-eps_value, eps_value)


def class_mean_update(noise: torch.Tensor, eta: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """δ_k ← clamp(mean_{i: y_i = k} η_i, −ε, ε) for each class k present in `labels`; absent classes keep δ_k.
    The per-class sums are one product with the one-hot labels (deterministic on a GPU, where a scatter-add
    of floats is not), then a divide and a clamp."""
    onehot = F.one_hot(labels, noise.shape[0]).to(noise.dtype)
    sums = (onehot.T @ eta.to(noise.dtype).flatten(1)).view_as(noise)
    counts = onehot.sum(0).view(-1, *(1,) * (noise.dim() - 1))
    mean = (sums / counts.clamp(min=1)).clamp_(-eps, eps)
    return torch.where(counts > 0, mean, noise)


@torch.no_grad()
def count_errors(model, inputs, amp: bool) -> torch.Tensor:
    """Misclassified samples over (x, y) in `inputs`, as a device tensor (read it once, after the loop)."""
    wrong = None
    for x, y in inputs:
        w = (_logits(model, x, amp).argmax(1) != y).sum()
        wrong = w if wrong is None else wrong + w
    return wrong
