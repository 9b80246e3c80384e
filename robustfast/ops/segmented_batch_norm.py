"""segmented_batch_norm: batch norm (no affine parameters) with per-segment statistics inside one batch, so that a
weight-sharing supernet can run P children × b images as one launch per op while each child sees its own batch
statistics. robustfast.reference.segmented_batch_norm is the definition; the backward is a fused op of its own.
"""
from __future__ import annotations

import math

import torch

from robustfast import _backend
from robustfast.reference import segmented_batch_norm as reference

SCHEMA = "(Tensor x, int segment, float eps) -> Tensor"
DTYPES = (torch.float32, torch.float64)


def _fake(x, segment, eps):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _fake_backward(grad, x, segment, eps):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.args = inputs[1:]


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    with _backend.use_backend(_backend.backward_backend(ctx.backend, "segmented_batch_norm_backward")):
        dx = BACKWARD.call(grad.contiguous(), x, *ctx.args)
    return dx, None, None


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Odd shapes: 3 segments of 5 (C = 3, 9×11), 2 of 1 sample (C = 3, 1023 positions), 4 of 2 on a 2-D input
    (few (segment, channel) programs: the Triton interpreter runs them one by one)."""
    out = []
    for i, (shape, segment) in enumerate((((15, 3, 9, 11), 5), ((2, 3, 1023), 1), ((8, 5), 2))):
        g = torch.Generator().manual_seed(100 + i)
        x = 2 * torch.randn(shape, generator=g, dtype=torch.float64) + 0.5
        out.append((x.to(device, dtype), segment, 1e-5))
    return out


def _backward_samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    out = []
    for i, (x, segment, eps) in enumerate(_samples(device, dtype)):
        g = torch.randn(x.shape, generator=torch.Generator().manual_seed(200 + i), dtype=torch.float64)
        out.append((g.to(device, dtype), x, segment, eps))
    return out


BACKWARD = _backend.register_op(
    "segmented_batch_norm_backward", "(Tensor grad, " + SCHEMA[1:],
    reference=reference.segmented_batch_norm_backward, fake=_fake_backward,
    triton="robustfast.kernels.segmented_batch_norm:segmented_batch_norm_bwd_triton", native=("cpp",),
    samples=_backward_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "segmented_batch_norm", SCHEMA, reference=reference.segmented_batch_norm, fake=_fake,
    triton="robustfast.kernels.segmented_batch_norm:segmented_batch_norm_triton", native=("cpp",),
    backward=_backward, setup_context=_setup_context, samples=_samples, dtypes=DTYPES,
)


def segmented_batch_norm(x: torch.Tensor, segment: int, *, eps: float = 1e-5) -> torch.Tensor:
    """x (N, C, *spatial) float32/float64 with N a multiple of `segment`: each run of `segment` consecutive samples
    is normalised per channel by its own mean and biased variance (BatchNorm2d(affine=False) in training mode, per
    segment). Differentiable w.r.t. x through the fused backward. No host read (the values are not checked: NaN in
    gives NaN out, as in batch norm)."""
    if not isinstance(x, torch.Tensor) or x.dtype not in DTYPES:
        what = f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float32 or float64 tensor, got {what}")
    if x.dim() < 2:
        raise ValueError(f"x must be (N, C, ...) with rank >= 2, got shape {tuple(x.shape)}")
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise ValueError(f"segment must be a positive int, got {segment!r}")
    if x.shape[0] % segment:
        raise ValueError(f"segment = {segment} must divide the batch size N = {x.shape[0]}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return OP.call(x.contiguous(), segment, float(eps))
