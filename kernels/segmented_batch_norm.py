"""Triton kernels of segmented_batch_norm (robustfast/reference/segmented_batch_norm.py is the definition).

One program per (segment, channel): it walks the segment's `segment × HW` values of its channel in blocks, twice
for μ and σ² (two passes, for accuracy), then once more to write; the backward adds one pass for mean g and
mean g·ŷ. Values are addressed as ((s·segment + r)·C + c)·HW + j.
"""
import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

MAX_BLOCK = 1024


@triton.jit
def _offsets(start, cols, s, c, SEG, C, HW):
    i = start + cols
    r = i // HW
    j = i - r * HW
    return ((s * SEG + r).to(tl.int64) * C + c) * HW + j


@triton.jit
def _moments(x_ptr, s, c, SEG, C, HW, eps, BLOCK: tl.constexpr, ACC: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    count = SEG * HW
    acc = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, count, BLOCK):
        mask = start + cols < count
        acc += tl.load(x_ptr + _offsets(start, cols, s, c, SEG, C, HW), mask=mask, other=0.0).to(ACC)
    mean = tl.sum(acc, axis=0) / count
    acc = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, count, BLOCK):
        mask = start + cols < count
        d = tl.load(x_ptr + _offsets(start, cols, s, c, SEG, C, HW), mask=mask, other=0.0).to(ACC) - mean
        acc += tl.where(mask, d * d, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / count + eps)
    return mean, rstd


@triton.jit
def _sbn_fwd_kernel(x_ptr, y_ptr, SEG, C, HW, eps, BLOCK: tl.constexpr, ACC: tl.constexpr):
    s = tl.program_id(0) // C
    c = tl.program_id(0) % C
    mean, rstd = _moments(x_ptr, s, c, SEG, C, HW, eps, BLOCK, ACC)
    cols = tl.arange(0, BLOCK)
    count = SEG * HW
    for start in range(0, count, BLOCK):
        mask = start + cols < count
        offs = _offsets(start, cols, s, c, SEG, C, HW)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        tl.store(y_ptr + offs, ((x.to(ACC) - mean) * rstd).to(x.dtype), mask=mask)


@triton.jit
def _sbn_bwd_kernel(g_ptr, x_ptr, dx_ptr, SEG, C, HW, eps, BLOCK: tl.constexpr, ACC: tl.constexpr):
    s = tl.program_id(0) // C
    c = tl.program_id(0) % C
    mean, rstd = _moments(x_ptr, s, c, SEG, C, HW, eps, BLOCK, ACC)
    cols = tl.arange(0, BLOCK)
    count = SEG * HW
    sg = tl.zeros([BLOCK], dtype=ACC)
    sgy = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, count, BLOCK):
        mask = start + cols < count
        offs = _offsets(start, cols, s, c, SEG, C, HW)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
        yhat = (tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC) - mean) * rstd
        sg += g
        sgy += tl.where(mask, g * yhat, 0.0)
    mg = tl.sum(sg, axis=0) / count
    mgy = tl.sum(sgy, axis=0) / count
    for start in range(0, count, BLOCK):
        mask = start + cols < count
        offs = _offsets(start, cols, s, c, SEG, C, HW)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
        yhat = (x.to(ACC) - mean) * rstd
        tl.store(dx_ptr + offs, ((g - mg - yhat * mgy) * rstd).to(x.dtype), mask=mask)


def _launch_shape(x, segment):
    n, c = x.shape[:2]
    hw = x.numel() // (n * c) if n * c else 0
    block = min(triton.next_power_of_2(max(segment * hw, 1)), MAX_BLOCK)
    acc = tl.float64 if x.dtype == torch.float64 else tl.float32
    return (n // segment) * c, c, hw, block, acc


def segmented_batch_norm_triton(x, segment: int, eps: float) -> torch.Tensor:
    """Launch on a validated, contiguous x (robustfast.ops.segmented_batch_norm ensures it)."""
    y = torch.empty_like(x)
    if x.numel() == 0:
        return y
    programs, c, hw, block, acc = _launch_shape(x, segment)
    wrap_triton(_sbn_fwd_kernel)[(programs,)](x, y, segment, c, hw, eps, BLOCK=block, ACC=acc)
    return y


def segmented_batch_norm_bwd_triton(grad, x, segment: int, eps: float) -> torch.Tensor:
    dx = torch.empty_like(x)
    if x.numel() == 0:
        return dx
    programs, c, hw, block, acc = _launch_shape(x, segment)
    wrap_triton(_sbn_bwd_kernel)[(programs,)](grad, x, dx, segment, c, hw, eps, BLOCK=block, ACC=acc)
    return dx
