"""adv_loss: the per-row losses of adversarial training (TRADES, MART, and the KL the TRADES attack ascends) as
one fused op, with a closed-form backward in both the clean and the adversarial logits.

robustfast.reference.adv_loss is the definition. The forward reads each row of both logits once and returns the
per-row loss (the batch loss is its mean); the backward (the op robustfast::adv_loss_backward) recomputes the row
statistics and writes both gradients in the same pass.
"""
from __future__ import annotations

import math

import torch

from robustfast import _backend
from robustfast._util.checks import check_like, opmath_dtype
from robustfast.reference import adv_loss as reference

KINDS = reference.KINDS
SCHEMA = "(Tensor clean_logits, Tensor adv_logits, Tensor labels, str kind, float beta) -> Tensor"


def _fake(a, b, labels, kind, beta):
    return a.new_empty(a.shape[0], dtype=opmath_dtype(a.dtype))


def _fake_backward(grad_loss, a, b, labels, kind, beta):
    return (torch.empty_like(a, memory_format=torch.contiguous_format),
            torch.empty_like(b, memory_format=torch.contiguous_format))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.args = inputs[3:]


def _backward(ctx, grad_loss):
    a, b, labels = ctx.saved_tensors
    with _backend.use_backend(_backend.backward_backend(ctx.backend, "adv_loss_backward")):
        grad_a, grad_b = BACKWARD.call(grad_loss.contiguous(), a, b, labels, *ctx.args)
    return grad_a, grad_b, None, None, None


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Each kind on K = 10, 37, 1023 in turn (B = 9, 5, 3), one row with saturated softmaxes."""
    out = []
    sizes = [(9, 10), (5, 37), (3, 1023), (9, 37), (7, 10), (5, 100)]
    for i, (kind, (b, k)) in enumerate(zip(KINDS * 2, sizes, strict=True)):
        g = torch.Generator().manual_seed(100 + i)
        a = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
        adv = a + 2 * torch.randn(b, k, generator=g, dtype=torch.float64)
        adv[0] = 40 * torch.sign(torch.randn(k, generator=g, dtype=torch.float64)) + torch.rand(k, generator=g)
        labels = torch.randint(0, k, (b,), generator=g)
        out.append((a.to(device, dtype), adv.to(device, dtype), labels.to(device), kind, 6.0 - i))
    return out


def _backward_samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    return [(torch.rand(args[0].shape[0], generator=torch.Generator().manual_seed(7), dtype=torch.float64)
             .to(device, opmath_dtype(dtype)) + 0.5, *args) for args in _samples(device, dtype)]


DTYPES = (torch.float32, torch.float64)
BACKWARD = _backend.register_op(
    "adv_loss_backward",
    "(Tensor grad_loss, Tensor clean_logits, Tensor adv_logits, Tensor labels, str kind, float beta) "
    "-> (Tensor, Tensor)",
    reference=reference.adv_loss_grad, fake=_fake_backward,
    triton="robustfast.kernels.adv_loss:adv_loss_bwd_triton", native=("cpp",),
    samples=_backward_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "adv_loss", SCHEMA, reference=reference.adv_loss, fake=_fake,
    triton="robustfast.kernels.adv_loss:adv_loss_fwd_triton", native=("cpp",),
    backward=_backward, setup_context=_setup_context, samples=_samples, dtypes=DTYPES,
)


def adv_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, labels: torch.Tensor, kind: str, *,
             beta: float = 6.0) -> torch.Tensor:
    """Per-row loss (B,) of `kind`: "trades" (CE(clean) + β·KL(p_clean ‖ p_adv)), "mart" (the MART loss) or "kl"
    (KL(p_clean ‖ p_adv), the TRADES attack's objective); take `.mean()` for the published batch loss.
    Differentiable in both logits through the fused closed-form backward. float32 (float64 for float64 logits).

    Checks types, shapes, dtypes, devices, `kind` and `beta` without reading tensor values (it runs inside the
    training step); labels outside [0, K) are an error on the C++ backend and undefined elsewhere, so callers
    check their labels once at entry.
    """
    check_like(adv_logits, clean_logits, "adv_logits", "clean_logits")
    if clean_logits.dim() != 2 or clean_logits.shape[1] < 2:
        raise ValueError(f"clean_logits must be B×K with K >= 2, got shape {tuple(clean_logits.shape)}")
    b = clean_logits.shape[0]
    if (not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool
            or labels.shape != (b,)):
        raise ValueError(f"labels must be an integer tensor of shape ({b},)")
    if labels.device != clean_logits.device:
        raise ValueError(f"labels is on {labels.device} but clean_logits is on {clean_logits.device}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return OP.call(clean_logits.contiguous(), adv_logits.contiguous(), labels.long().contiguous(), kind,
                   float(beta))
