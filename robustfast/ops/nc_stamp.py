"""nc_stamp: Neural Cleanse's stamp (1 − m_k)⊙x_b + m_k⊙p_k for K candidate triggers over one batch, in one launch,
with its closed-form backward (∂x, ∂mask, ∂pattern) as the op nc_stamp_backward. robustfast.reference.nc_stamp is
the definition."""
from __future__ import annotations

import torch

from robustfast import _backend
from robustfast._util.checks import check_float_tensor
from robustfast.reference import nc_stamp as reference

SCHEMA = "(Tensor x, Tensor mask, Tensor pattern) -> Tensor"
DTYPES = (torch.float32, torch.float64)


def _fake(x, mask, pattern):
    return x.new_empty(mask.shape[0] * x.shape[0], *x.shape[1:])


def _fake_backward(grad, x, mask, pattern):
    contiguous = torch.contiguous_format
    return (torch.empty_like(x, memory_format=contiguous), torch.empty_like(mask, memory_format=contiguous),
            torch.empty_like(pattern, memory_format=contiguous))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, mask, pattern = ctx.saved_tensors
    with _backend.use_backend(_backend.backward_backend(ctx.backend, "nc_stamp_backward")):
        grad_x, grad_mask, grad_pattern = BACKWARD.call(grad.contiguous(), x, mask, pattern)
    return grad_x, grad_mask, grad_pattern


def _inputs(device, dtype, seed: int, b: int, c: int, h: int, w: int, k: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    mask = torch.rand(k, h, w, generator=g, dtype=torch.float64)
    pattern = torch.rand(k, c, h, w, generator=g, dtype=torch.float64)
    return tuple(t.to(device, dtype) for t in (x, mask, pattern))


SHAPES = ((3, 3, 7, 5, 4), (2, 1, 13, 11, 3), (5, 3, 8, 8, 10))  # (B, C, H, W, K): odd sizes, a prime plane


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    return [_inputs(device, dtype, 11 + i, *shape) for i, shape in enumerate(SHAPES)]


def _backward_samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    out = []
    for i, shape in enumerate(SHAPES):
        x, mask, pattern = _inputs(device, dtype, 21 + i, *shape)
        grad = torch.randn(mask.shape[0] * x.shape[0], *x.shape[1:], generator=torch.Generator().manual_seed(31 + i),
                           dtype=torch.float64).to(device, dtype)
        out.append((grad, x, mask, pattern))
    return out


BACKWARD = _backend.register_op(
    "nc_stamp_backward", "(Tensor grad, Tensor x, Tensor mask, Tensor pattern) -> (Tensor, Tensor, Tensor)",
    reference=reference.nc_stamp_backward, fake=_fake_backward,
    triton="robustfast.kernels.nc_stamp:nc_stamp_backward_triton", native=("cpp",),
    samples=_backward_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "nc_stamp", SCHEMA, reference=reference.nc_stamp, fake=_fake,
    triton="robustfast.kernels.nc_stamp:nc_stamp_triton", native=("cpp",),
    backward=_backward, setup_context=_setup_context, samples=_samples, dtypes=DTYPES,
)


def nc_stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Stamp every image of x (B, C, H, W) with each of K triggers: mask (K, H, W), pattern (K, C, H, W), all in
    [0, 1] image space and of one float dtype (float32 or float64) and device. Returns (K·B, C, H, W), row k·B + b
    = (1 − mask_k)⊙x_b + mask_k⊙pattern_k; differentiable w.r.t. all three through the fused backward op. No host
    read: values are not checked (Neural Cleanse clamps mask and pattern to [0, 1] after every step itself)."""
    check_float_tensor(x, "x")
    check_float_tensor(mask, "mask")
    check_float_tensor(pattern, "pattern")
    if x.dim() != 4:
        raise ValueError(f"x must be B×C×H×W (rank 4), got shape {tuple(x.shape)}")
    _, c, h, w = x.shape
    if mask.dim() != 3 or mask.shape[1:] != (h, w):
        raise ValueError(f"mask must be K×H×W with H×W = {h}×{w} (x's), got shape {tuple(mask.shape)}")
    if pattern.shape != (mask.shape[0], c, h, w):
        raise ValueError(f"pattern must be K×C×H×W = {(mask.shape[0], c, h, w)}, got shape {tuple(pattern.shape)}")
    if x.dtype not in DTYPES or mask.dtype != x.dtype or pattern.dtype != x.dtype:
        raise ValueError(f"x, mask and pattern must share one dtype, float32 or float64; got {x.dtype}, "
                         f"{mask.dtype}, {pattern.dtype}")
    if mask.device != x.device or pattern.device != x.device:
        raise ValueError(f"mask and pattern must be on x's device {x.device}, got {mask.device}, {pattern.device}")
    return OP.call(x.contiguous(), mask.contiguous(), pattern.contiguous())
