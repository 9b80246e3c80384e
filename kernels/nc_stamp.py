"""Triton kernels of robustfast::nc_stamp and nc_stamp_backward (robustfast.reference.nc_stamp is the definition).

Layouts are dense and contiguous: x (B, C, H, W), mask (K, H, W), pattern (K, C, H, W), out (K·B, C, H, W), with
S = H·W pixels per plane. The forward is one elementwise pass over out; each gradient is one pass over its own
output whose program loops over the summed index (k for ∂x, b for ∂p, (b, c) for ∂m), so nothing is atomic and
the sums run in a fixed order. float32 and float64 only: the data type is the compute type.
"""
import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

BLOCK = 256


@triton.jit
def _stamp_fwd_kernel(x_ptr, m_ptr, p_ptr, out_ptr, total, B, C, S, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = i < total
    s = i % S
    c = (i // S) % C
    kb = i // (S * C)
    b = kb % B
    k = kb // B
    x = tl.load(x_ptr + (b * C + c) * S + s, mask=live, other=0.0)
    m = tl.load(m_ptr + k * S + s, mask=live, other=0.0)
    p = tl.load(p_ptr + (k * C + c) * S + s, mask=live, other=0.0)
    out = (1 - m) * x + m * p
    tl.store(out_ptr + i, out, mask=live)


@triton.jit
def _grad_x_kernel(g_ptr, m_ptr, gx_ptr, total, K, B, C, S, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # over B·C·S
    live = i < total
    s = i % S
    acc = tl.zeros([BLOCK], dtype=gx_ptr.dtype.element_ty)
    for k in range(K):
        g = tl.load(g_ptr + k * total + i, mask=live, other=0.0)
        m = tl.load(m_ptr + k * S + s, mask=live, other=0.0)
        acc += (1 - m) * g
    tl.store(gx_ptr + i, acc, mask=live)


@triton.jit
def _grad_p_kernel(g_ptr, m_ptr, gp_ptr, total, B, C, S, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # over K·C·S
    live = i < total
    s = i % S
    c = (i // S) % C
    k = i // (S * C)
    acc = tl.zeros([BLOCK], dtype=gp_ptr.dtype.element_ty)
    for b in range(B):
        acc += tl.load(g_ptr + ((k * B + b) * C + c) * S + s, mask=live, other=0.0)
    m = tl.load(m_ptr + k * S + s, mask=live, other=0.0)
    tl.store(gp_ptr + i, m * acc, mask=live)


@triton.jit
def _grad_m_kernel(g_ptr, x_ptr, p_ptr, gm_ptr, total, B, C, S, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # over K·S
    live = i < total
    s = i % S
    k = i // S
    acc = tl.zeros([BLOCK], dtype=gm_ptr.dtype.element_ty)
    for c in range(C):
        p = tl.load(p_ptr + (k * C + c) * S + s, mask=live, other=0.0)
        for b in range(B):
            g = tl.load(g_ptr + ((k * B + b) * C + c) * S + s, mask=live, other=0.0)
            x = tl.load(x_ptr + (b * C + c) * S + s, mask=live, other=0.0)
            acc += g * (p - x)
    tl.store(gm_ptr + i, acc, mask=live)


def nc_stamp_triton(x, mask, pattern) -> torch.Tensor:
    """Launch on validated contiguous inputs of one dtype (robustfast.ops.nc_stamp ensures it)."""
    (b, c, h, w), k = x.shape, mask.shape[0]
    out = x.new_empty(k * b, c, h, w)
    if out.numel():
        wrap_triton(_stamp_fwd_kernel)[(triton.cdiv(out.numel(), BLOCK),)](x, mask, pattern, out, out.numel(), b, c,
                                                                           h * w, BLOCK=BLOCK)
    return out


def nc_stamp_backward_triton(grad, x, mask, pattern):
    (b, c, h, w), k = x.shape, mask.shape[0]
    s = h * w
    grad_x, grad_m, grad_p = (torch.zeros(t.shape, dtype=t.dtype, device=t.device) for t in (x, mask, pattern))
    if grad.numel() == 0:
        return grad_x, grad_m, grad_p
    wrap_triton(_grad_x_kernel)[(triton.cdiv(x.numel(), BLOCK),)](grad, mask, grad_x, x.numel(), k, b, c, s,
                                                                  BLOCK=BLOCK)
    wrap_triton(_grad_p_kernel)[(triton.cdiv(pattern.numel(), BLOCK),)](grad, mask, grad_p, pattern.numel(), b, c,
                                                                        s, BLOCK=BLOCK)
    wrap_triton(_grad_m_kernel)[(triton.cdiv(mask.numel(), BLOCK),)](grad, x, pattern, grad_m, mask.numel(), b, c,
                                                                     s, BLOCK=BLOCK)
    return grad_x, grad_m, grad_p
