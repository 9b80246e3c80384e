"""Triton kernels of token_cosine (see robustfast/reference/token_cosine.py for the definition).

A 2-D grid of (sample, block of TOKENS tokens). The forward walks each token's D features once, accumulating
a·b, ‖a‖² and ‖b‖² in the compute precision, and writes per block either the masked sum of the cosines (token)
or the three masked sums (flat); the launcher adds the blocks (a (B, T/TOKENS) sum). The backward recomputes
the token's statistics (token) or takes the sample's two coefficients (flat) and writes ∂J/∂a in one more walk.
"""
import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast._util.checks import opmath_dtype

ETA = 1e-8
MAX_BLOCK_D = 256
TILE = 4096  # tokens × features held by one program at a time


@triton.jit
def _token_stats(a_ptr, b_ptr, base, toks, tmask, D, CDT: tl.constexpr, BLOCK_D: tl.constexpr):
    cols = tl.arange(0, BLOCK_D)
    dot = tl.zeros([toks.shape[0]], dtype=CDT)
    aa = tl.zeros([toks.shape[0]], dtype=CDT)
    bb = tl.zeros([toks.shape[0]], dtype=CDT)
    for start in range(0, D, BLOCK_D):
        offs = base + toks[:, None].to(tl.int64) * D + start + cols[None, :]
        m = tmask[:, None] & (start + cols[None, :] < D)
        a = tl.load(a_ptr + offs, mask=m, other=0.0).to(CDT)
        b = tl.load(b_ptr + offs, mask=m, other=0.0).to(CDT)
        dot += tl.sum(a * b, axis=1)
        aa += tl.sum(a * a, axis=1)
        bb += tl.sum(b * b, axis=1)
    return dot, aa, bb


@triton.jit
def _fwd_kernel(a_ptr, b_ptr, mask_ptr, out_ptr, T, D, NBLK, FLAT: tl.constexpr, TOKENS: tl.constexpr,
                BLOCK_D: tl.constexpr):
    CDT: tl.constexpr = out_ptr.dtype.element_ty
    row = tl.program_id(0)
    blk = tl.program_id(1)
    toks = blk * TOKENS + tl.arange(0, TOKENS)
    inside = toks < T
    keep = (tl.load(mask_ptr + toks, mask=inside, other=0) != 0) & inside
    dot, aa, bb = _token_stats(a_ptr, b_ptr, row.to(tl.int64) * T * D, toks, keep, D, CDT, BLOCK_D)
    zero = tl.zeros([TOKENS], dtype=CDT)
    if FLAT:
        part = (row * NBLK + blk) * 3
        tl.store(out_ptr + part, tl.sum(dot, axis=0))
        tl.store(out_ptr + part + 1, tl.sum(aa, axis=0))
        tl.store(out_ptr + part + 2, tl.sum(bb, axis=0))
    else:
        cos = dot / (tl.maximum(tl.sqrt(aa), ETA) * tl.maximum(tl.sqrt(bb), ETA))
        tl.store(out_ptr + row * NBLK + blk, tl.sum(tl.where(keep, cos, zero), axis=0))


@triton.jit
def _bwd_kernel(g_ptr, a_ptr, b_ptr, mask_ptr, coef_ptr, out_ptr, T, D, FLAT: tl.constexpr,
                TOKENS: tl.constexpr, BLOCK_D: tl.constexpr):
    CDT: tl.constexpr = coef_ptr.dtype.element_ty
    row = tl.program_id(0)
    toks = tl.program_id(1) * TOKENS + tl.arange(0, TOKENS)
    inside = toks < T
    keep = (tl.load(mask_ptr + toks, mask=inside, other=0) != 0) & inside
    base = row.to(tl.int64) * T * D
    if FLAT:
        # coef holds, per sample, g·(1/(max‖u‖·max‖v‖), [‖u‖ > η]·c/‖u‖²) for the flat vector u.
        cb = tl.zeros([TOKENS], dtype=CDT) + tl.load(coef_ptr + row * 2)
        ca = tl.zeros([TOKENS], dtype=CDT) + tl.load(coef_ptr + row * 2 + 1)
    else:
        dot, aa, bb = _token_stats(a_ptr, b_ptr, base, toks, keep, D, CDT, BLOCK_D)
        na, nb = tl.sqrt(aa), tl.sqrt(bb)
        ma, mb = tl.maximum(na, ETA), tl.maximum(nb, ETA)
        scale = tl.load(g_ptr + row).to(CDT) * tl.load(coef_ptr)  # g / |S|
        cos = dot / (ma * mb)
        cb = scale / (ma * mb)
        ca = tl.where(na > ETA, scale * cos / tl.maximum(aa, ETA * ETA), 0.0)
    cols = tl.arange(0, BLOCK_D)
    for start in range(0, D, BLOCK_D):
        offs = base + toks[:, None].to(tl.int64) * D + start + cols[None, :]
        inb = inside[:, None] & (start + cols[None, :] < D)
        m = keep[:, None] & inb
        a_raw = tl.load(a_ptr + offs, mask=m, other=0.0)
        b = tl.load(b_ptr + offs, mask=m, other=0.0).to(CDT)
        grad = cb[:, None] * b - ca[:, None] * a_raw.to(CDT)
        tl.store(out_ptr + offs, grad.to(a_raw.dtype), mask=inb)


def _meta(T: int, D: int) -> tuple[int, int]:
    block_d = min(triton.next_power_of_2(max(D, 1)), MAX_BLOCK_D)
    tokens = max(1, min(triton.next_power_of_2(max(T, 1)), TILE // block_d))
    return tokens, block_d


def _partials(a, b, token_mask, flat: bool) -> torch.Tensor:
    B, T, D = a.shape
    tokens, block_d = _meta(T, D)
    nblk = triton.cdiv(T, tokens)
    out = torch.empty((B, nblk, 3) if flat else (B, nblk), dtype=opmath_dtype(a.dtype), device=a.device)
    wrap_triton(_fwd_kernel)[(B, nblk)](a, b, token_mask, out, T, D, nblk, FLAT=flat, TOKENS=tokens,
                                        BLOCK_D=block_d)
    return out.sum(1)


def token_cosine_fwd_triton(a, b, token_mask, reduction: str) -> torch.Tensor:
    """J (B,) in the compute precision, from contiguous a, b (B, T, D) and a bool mask (T,) (validated by
    robustfast.ops.token_cosine)."""
    B, T, D = a.shape
    compute = opmath_dtype(a.dtype)
    if B == 0 or T == 0 or D == 0:
        return torch.zeros(B, dtype=compute, device=a.device)
    if reduction == "flat":
        dot, aa, bb = _partials(a, b, token_mask, True).unbind(1)
        return dot / (aa.sqrt().clamp(min=ETA) * bb.sqrt().clamp(min=ETA))
    return _partials(a, b, token_mask, False) / token_mask.sum().clamp(min=1).to(compute)


def token_cosine_bwd_triton(grad, a, b, token_mask, reduction: str) -> torch.Tensor:
    """∂J/∂a · grad, in a's dtype and shape."""
    B, T, D = a.shape
    out = torch.empty_like(a, memory_format=torch.contiguous_format)
    if out.numel() == 0:
        return out
    compute = opmath_dtype(a.dtype)
    grad = grad.to(compute).contiguous()
    flat = reduction == "flat"
    if flat:
        dot, aa, bb = _partials(a, b, token_mask, True).unbind(1)
        na = aa.sqrt()
        ma, mb = na.clamp(min=ETA), bb.sqrt().clamp(min=ETA)
        cos = dot / (ma * mb)
        radial = torch.where(na > ETA, cos / aa.clamp(min=ETA * ETA), torch.zeros_like(cos))
        coef = torch.stack([grad / (ma * mb), grad * radial], dim=1).contiguous()
    else:
        coef = (1.0 / token_mask.sum().clamp(min=1).to(compute)).reshape(1)
    tokens, block_d = _meta(T, D)
    wrap_triton(_bwd_kernel)[(B, triton.cdiv(T, tokens))](grad, a, b, token_mask, coef, out, T, D, FLAT=flat,
                                                          TOKENS=tokens, BLOCK_D=block_d)
    return out
