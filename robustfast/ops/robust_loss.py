"""robust_loss: every loss of the normalized-loss / Active Passive Loss family as one fused op.

The forward computes, in one sweep over each row of logits, the statistics the family needs and returns the
per-sample loss; the backward recomputes them and writes dloss/dlogits in closed form in one more sweep.
robustfast.reference.robust_loss is the definition.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from robustfast import _backend
from robustfast.reference import robust_loss as reference

LOSSES = reference.LOSSES


@torch.library.triton_op("robustfast::robust_loss_fwd_triton", mutates_args=())
def _fwd_triton(logits: torch.Tensor, labels: torch.Tensor, kind: str, alpha: float, beta: float, gamma: float,
                q: float, detach_focal_factor: bool) -> torch.Tensor:
    from robustfast.kernels.robust_loss import robust_loss_fwd_triton

    return robust_loss_fwd_triton(logits, labels, kind, alpha, beta, gamma, q)  # the loss ignores the detach


@torch.library.triton_op("robustfast::robust_loss_bwd_triton", mutates_args=())
def _bwd_triton(grad_loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, kind: str, alpha: float,
                beta: float, gamma: float, q: float, detach_focal_factor: bool) -> torch.Tensor:
    from robustfast.kernels.robust_loss import robust_loss_bwd_triton

    return robust_loss_bwd_triton(grad_loss, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor)


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# robustfast._C carries the C++ kernels unless it failed to load (or is a build that predates them).
_CPP = _backend.extension() is not None and hasattr(torch.ops.robustfast, "robust_loss_fwd")
if _CPP:

    @torch.library.register_fake("robustfast::robust_loss_fwd")
    def _(logits, labels, kind, alpha, beta, gamma, q):
        return logits.new_empty(logits.shape[0], dtype=_loss_dtype(logits.dtype))

    @torch.library.register_fake("robustfast::robust_loss_bwd")
    def _(grad_loss, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
        return torch.empty_like(logits)


def _cpp_fwd(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    return torch.ops.robustfast.robust_loss_fwd(logits, labels, kind, alpha, beta, gamma, q)


def _cpp_bwd(grad_loss, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    return torch.ops.robustfast.robust_loss_bwd(grad_loss, logits, labels, kind, alpha, beta, gamma, q,
                                                detach_focal_factor)


def _reference_fwd(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    stats = reference.row_stats(logits, labels, gamma, q, detach_focal_factor)
    return reference.loss_from_stats(stats, kind, alpha, beta, q)  # float32/float64, not rounded to bf16


def _reference_bwd(grad_loss, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    return reference.robust_loss_grad(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor,
                                      grad_out=grad_loss)


def _implementation(backend: str):
    if backend == "reference":
        return _reference_fwd, _reference_bwd
    if backend == "triton":
        return torch.ops.robustfast.robust_loss_fwd_triton, torch.ops.robustfast.robust_loss_bwd_triton
    return _cpp_fwd, _cpp_bwd


class _RobustLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor, backend):
        ctx.save_for_backward(logits, labels)
        ctx.args = (kind, alpha, beta, gamma, q, detach_focal_factor)
        ctx.backend = backend
        return _implementation(backend)[0](logits, labels, *ctx.args)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        logits, labels = ctx.saved_tensors
        grad = _implementation(ctx.backend)[1](grad_loss.contiguous(), logits, labels, *ctx.args)
        return grad, None, None, None, None, None, None, None, None


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


def robust_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, *, alpha: float = 1.0, beta: float = 1.0,
                gamma: float = 0.5, q: float = 0.7, detach_focal_factor: bool = True,
                num_classes: int | None = None) -> torch.Tensor:
    """Per-sample loss (B,) of `kind` (one of LOSSES) for logits (B, K) and integer labels (B,), differentiable
    w.r.t. the logits through the fused closed-form backward. float32 (float64 for float64 logits).

    Hyperparameters are taken as given (robustfast.losses resolves each kind's defaults and checks them).
    """
    check_inputs(logits, labels, num_classes)
    if kind not in LOSSES:
        raise ValueError(f"kind must be one of {', '.join(LOSSES)}; got {kind!r}")
    backend = _backend.choose("robust_loss", logits.device, ("triton", "cpp") if _CPP else ("triton",))
    return _RobustLoss.apply(logits.contiguous(), labels.long().contiguous(), kind, float(alpha), float(beta),
                             float(gamma), float(q), bool(detach_focal_factor), backend)
