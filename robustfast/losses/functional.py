"""robust_loss: the functional form of every loss in robustfast.losses, and the input checks they share."""
from __future__ import annotations

import math
import numbers

import torch
from torch.autograd.function import once_differentiable

from robustfast.reference import robust_loss as reference

LOSSES = reference.LOSSES
REDUCTIONS = ("mean", "sum", "none")


def _defaults(kind: str) -> dict:
    """The hyperparameters `kind` takes and their defaults: the CIFAR-10 configs of the published code."""
    active, passive = reference.COMPONENTS[kind]
    out = {}
    if active is not None:
        out["alpha"] = 1.0
    if passive is not None:
        out["beta"] = 1.0
    if active in ("fl", "nfl"):
        out.update(gamma=0.5, detach_focal_factor=True)
    if active == "gce":
        out["q"] = 0.7
    if active == "ngce":
        out["q"] = 0.1
    if kind == "sce":
        out["alpha"] = 0.1
    return out


DEFAULTS = {kind: _defaults(kind) for kind in LOSSES}


def check_kind(kind) -> str:
    if not isinstance(kind, str) or kind.lower() not in DEFAULTS:
        raise ValueError(f"kind must be one of {', '.join(LOSSES)}; got {kind!r}")
    return kind.lower()


def resolve_hyperparameters(kind: str, given: dict) -> dict:
    """`kind`'s defaults overridden by `given`; a name that does not apply to `kind` or a bad value raises."""
    allowed = DEFAULTS[kind]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"hyperparameter {unknown[0]!r} does not apply to {kind!r}, which takes "
                         f"{', '.join(allowed)}")
    out = {**allowed, **given}
    for name, value in out.items():
        if name == "detach_focal_factor":
            if not isinstance(value, bool):
                raise ValueError(f"detach_focal_factor must be True or False, got {value!r}")
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if name == "q" and not 0 < value <= 1:
            raise ValueError(f"q must lie in (0, 1], got {value}")
        if name != "q" and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        out[name] = float(value)
    return out


def check_reduction(reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")


def check_inputs(logits, labels, num_classes: int | None = None) -> None:
    """Logits float (B, K), K ≥ 2, finite; labels integer (B,) in [0, K). Reads values once (one host sync)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        what = f"dtype {logits.dtype}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating-point tensor, got {what}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be B×K (rank 2), got shape {tuple(logits.shape)}")
    b, k = logits.shape
    if k < 2:
        raise ValueError(f"logits must have K >= 2 classes (columns), got K = {k}")
    if num_classes is not None and k != num_classes:
        raise ValueError(f"logits has {k} columns but the loss was built with num_classes={num_classes}")
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class indices, got dtype {labels.dtype}")
    if labels.shape != (b,):
        raise ValueError(f"labels must have shape ({b},), one class index per row of logits, "
                         f"got {tuple(labels.shape)}")
    if labels.device != logits.device:
        raise ValueError(f"labels is on {labels.device} but logits is on {logits.device}")
    finite, in_range = torch.stack([torch.isfinite(logits).all(), ((labels >= 0) & (labels < k)).all()]).tolist()
    if not finite:
        raise ValueError("logits contains NaN or inf")
    if not in_range:
        raise ValueError(f"labels must lie in [0, {k}) for K = {k} classes")


class _ReferenceRobustLoss(torch.autograd.Function):
    """Per-sample loss by the reference; backward by its closed-form gradient, as the fused kernels do."""

    @staticmethod
    def forward(ctx, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
        ctx.save_for_backward(logits, labels)
        ctx.args = (kind, alpha, beta, gamma, q, detach_focal_factor)
        return reference.robust_loss(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        logits, labels = ctx.saved_tensors
        grad = reference.robust_loss_grad(logits, labels, *ctx.args, grad_out=grad_out)
        return grad, None, None, None, None, None, None, None


def _robust_loss(logits, labels, kind: str, hyperparameters: dict, reduction: str, num_classes: int | None = None):
    """Checked per-sample loss of `kind`, reduced. `kind` and `hyperparameters` are already resolved."""
    check_inputs(logits, labels, num_classes)
    h = {"alpha": 1.0, "beta": 1.0, "gamma": 0.5, "q": 0.7, "detach_focal_factor": True, **hyperparameters}
    per_sample = _ReferenceRobustLoss.apply(logits, labels.long(), kind, h["alpha"], h["beta"], h["gamma"], h["q"],
                                            h["detach_focal_factor"])
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def robust_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, *, reduction: str = "mean",
                **hyperparameters) -> torch.Tensor:
    """The loss `kind` (one of LOSSES: "ce", "fl", "mae", "rce", "gce", "sce", "nce", "nfl", "ngce", "nmae",
    "nrce", "nce+rce", "nce+mae", "nfl+rce", "nfl+mae", "ngce+rce", "ngce+mae") of logits (B, K) against integer
    labels (B,), reduced by `reduction` ("mean", "sum" or "none").

    Every kind is α·active + β·passive: a single active loss (CE, FL, GCE, NCE, NFL, NGCE) takes `alpha` as its
    scale, a single passive one (MAE, RCE, NMAE, NRCE) takes `beta`; FL and NFL take `gamma` and
    `detach_focal_factor`, GCE and NGCE take `q`. A hyperparameter that does not apply to `kind` raises.
    Defaults (`DEFAULTS`) are the CIFAR-10 configs: α = β = 1, γ = 0.5, q = 0.7 (GCE) or 0.1 (NGCE), and
    α = 0.1, β = 1 for SCE. The definitions and the choices made about the published code are in
    robustfast.reference.robust_loss.
    """
    kind = check_kind(kind)
    check_reduction(reduction)
    return _robust_loss(logits, labels, kind, resolve_hyperparameters(kind, hyperparameters), reduction)
