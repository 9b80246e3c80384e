"""robust_loss: every loss of the normalized-loss / Active Passive Loss family as one fused op.

The forward computes, in one sweep over each row of logits, the statistics the family needs and returns the
per-sample loss; the backward recomputes them and writes dloss/dlogits in closed form in one more sweep.
robustfast.reference.robust_loss is the definition.
"""
from __future__ import annotations

import math

import torch

from robustfast import _backend
from robustfast._util.checks import opmath_dtype
from robustfast.reference import robust_loss as reference

LOSSES = reference.LOSSES
SCHEMA = "(Tensor logits, Tensor labels, str kind, float alpha, float beta, float gamma, float q, " \
         "bool detach_focal_factor) -> Tensor"


def check_hyper(alpha, beta, gamma, q) -> None:
    """α, β finite; γ finite and ≥ 0; q finite and > 0 (what every backend's kernel requires). Python floats:
    no host read."""
    values = {}
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("q", q)):
        try:
            values[name] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a real number, got {type(v).__name__}") from None
    alpha, beta, gamma, q = values.values()
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if not (math.isfinite(q) and q > 0):
        raise ValueError(f"q must be finite and > 0, got {q}")


def _reference(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    check_hyper(alpha, beta, gamma, q)
    stats = reference.row_stats(logits, labels, gamma, q, detach_focal_factor)
    return reference.loss_from_stats(stats, kind, alpha, beta, q)  # float32/float64, not rounded to bf16


def _reference_backward(grad_loss, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    check_hyper(alpha, beta, gamma, q)
    return reference.robust_loss_grad(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor,
                                      grad_out=grad_loss)


def _fake(logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    return logits.new_empty(logits.shape[0], dtype=opmath_dtype(logits.dtype))


def _fake_backward(grad_loss, logits, labels, kind, alpha, beta, gamma, q, detach_focal_factor):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1])
    ctx.args = inputs[2:]


def _backward(ctx, grad_loss):
    logits, labels = ctx.saved_tensors
    with _backend.use_backend(_backend.backward_backend(ctx.backend, "robust_loss_backward")):
        grad = BACKWARD.call(grad_loss.contiguous(), logits, labels, *ctx.args)
    return grad, None, None, None, None, None, None, None


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Arguments for the registry tests: every kind, on K = 2, 100, 1023 or a prime in turn, with an extreme row."""
    out = []
    for i, kind in enumerate(LOSSES):
        b, k = [(9, 2), (9, 100), (5, 1023), (7, 37)][i % 4]
        g = torch.Generator().manual_seed(i)
        logits = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
        logits[0] = 50 * torch.sign(torch.randn(k, generator=g, dtype=torch.float64))
        labels = torch.randint(0, k, (b,), generator=g)
        out.append((logits.to(device, dtype), labels.to(device), kind, 0.7, 1.3, 0.5, 0.4, i % 3 == 0))
    return out


def _backward_samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    return [(torch.rand(args[0].shape[0], generator=torch.Generator().manual_seed(7), dtype=torch.float64)
             .to(device, opmath_dtype(dtype)) + 0.5, *args) for args in _samples(device, dtype)]


DTYPES = (torch.float32, torch.float64, torch.bfloat16)
BACKWARD = _backend.register_op(
    "robust_loss_backward", "(Tensor grad_loss, " + SCHEMA[1:],
    reference=_reference_backward, fake=_fake_backward,
    triton="robustfast.kernels.robust_loss:robust_loss_bwd_triton", native=("cpp",),
    samples=_backward_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "robust_loss", SCHEMA, reference=_reference, fake=_fake,
    triton="robustfast.kernels.robust_loss:robust_loss_fwd_triton", native=("cpp",),
    backward=_backward, setup_context=_setup_context, samples=_samples, dtypes=DTYPES,
)


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
    w.r.t. the logits through the fused closed-form backward (the op robustfast::robust_loss_backward). float32
    (float64 for float64 logits). One host read per call: check_inputs reads "finite logits, labels in range"
    in one batched transfer.

    Hyperparameters: alpha, beta finite, gamma finite and >= 0, q finite and > 0 on every backend (a ValueError
    naming the argument; they are Python numbers, so no host read); robustfast.losses resolves each kind's defaults.
    """
    check_inputs(logits, labels, num_classes)
    check_hyper(alpha, beta, gamma, q)
    if kind not in LOSSES:
        raise ValueError(f"kind must be one of {', '.join(LOSSES)}; got {kind!r}")
    return OP.call(logits.contiguous(), labels.long().contiguous(), kind, float(alpha), float(beta), float(gamma),
                   float(q), bool(detach_focal_factor))
