"""Triton kernels of Cognitive Distillation's mask step (robustfast/reference/cd_mask_step.py is the definition).

Both kernels run on a grid of (image, tile of BLOCK pixels); a program walks the image's channels.
- `_blend_kernel`: m = σ(2θ) = (tanh θ + 1)/2 and x̃_c = m·x_c + (1 − m)·r_c; writes m and x̃.
- `_step_kernel`: per mask plane, the data term Σ_c G_c (x_c − r_c) (or its own channel when C_m = C), the sparsity
  term (γ, or γ·m/‖m‖₂ with the norms from one torch reduction in the launcher) and the squared-TV stencil over
  the in-bounds 4-neighbours, whose masks it recomputes from θ (the tile's halo read straight from memory); then
  ∂J/∂θ = ∂J/∂m · 2m(1 − m) and the Adam update, writing θ, M and V.
Arithmetic in float32 (float64 for float64 data); coefficients travel as float32 (hi, lo) pairs so that the float64
kernels see them to ~1e−15 (a plain float argument is float32 on the GPU).
"""
import struct

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast._util.checks import opmath_dtype
from robustfast.reference.cd_mask_step import ADAM_EPS, BETA1, BETA2

BLOCK = 1024
_B1 = tl.constexpr(BETA1)
_B2 = tl.constexpr(BETA2)
_EPS = tl.constexpr(ADAM_EPS)


@triton.jit
def _hyper(hi, lo, CDT: tl.constexpr):
    return tl.cast(hi, CDT) + tl.cast(lo, CDT)


@triton.jit
def _mask(theta):
    return 1.0 / (1.0 + tl.exp(-2.0 * theta))


@triton.jit
def _blend_kernel(theta_ptr, x_ptr, r_ptr, m_ptr, xt_ptr, C, HW, CM: tl.constexpr, CDT: tl.constexpr,
                  BLOCK: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < HW
    for c in range(C):
        if (CM == 1) and (c > 0):
            pass
        else:
            plane = n * CM + (0 if CM == 1 else c)
            m = _mask(tl.load(theta_ptr + plane * HW + offs, mask=ok, other=0.0).to(CDT))
            tl.store(m_ptr + plane * HW + offs, m, mask=ok)
        r = tl.load(r_ptr + n * C + c).to(CDT)
        x = tl.load(x_ptr + (n * C + c) * HW + offs, mask=ok, other=0.0).to(CDT)
        tl.store(xt_ptr + (n * C + c) * HW + offs, m * x + (1.0 - m) * r, mask=ok)


@triton.jit
def _neighbour(theta_ptr, base, h, w, dh: tl.constexpr, dw: tl.constexpr, H, W, ok, m, CDT: tl.constexpr):
    """(m − m_n) where the neighbour (h + dh, w + dw) is in bounds, else 0."""
    hn = h + dh
    wn = w + dw
    inside = ok & (hn >= 0) & (hn < H) & (wn >= 0) & (wn < W)
    mn = _mask(tl.load(theta_ptr + base + hn * W + wn, mask=inside, other=0.0).to(CDT))
    return tl.where(inside, m - mn, 0.0)


@triton.jit
def _step_kernel(g_ptr, x_ptr, r_ptr, theta_ptr, ma_ptr, va_ptr, norm_ptr, theta_out, ma_out, va_out, C, H, W,
                 step_hi, step_lo, bc2_hi, bc2_lo, sp_hi, sp_lo, tv_hi, tv_lo, CM: tl.constexpr, P: tl.constexpr,
                 CDT: tl.constexpr, BLOCK: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    HW = H * W
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < HW
    h = offs // W
    w = offs % W
    step_size = _hyper(step_hi, step_lo, CDT)      # lr / (1 − β1^t)
    inv_sqrt_bc2 = _hyper(bc2_hi, bc2_lo, CDT)     # 1 / √(1 − β2^t)
    sparse = _hyper(sp_hi, sp_lo, CDT)             # s·γ
    tv = _hyper(tv_hi, tv_lo, CDT)                 # s·2β/(C_m·H·W)
    if P == 2:
        sparse = sparse / tl.load(norm_ptr + n).to(CDT)
    for cm in range(CM):
        plane = (n * CM + cm) * HW
        theta = tl.load(theta_ptr + plane + offs, mask=ok, other=0.0).to(CDT)
        m = _mask(theta)
        if CM == 1:
            data = tl.zeros([BLOCK], dtype=CDT)
            for c in range(C):
                r = tl.load(r_ptr + n * C + c).to(CDT)
                g = tl.load(g_ptr + (n * C + c) * HW + offs, mask=ok, other=0.0).to(CDT)
                x = tl.load(x_ptr + (n * C + c) * HW + offs, mask=ok, other=0.0).to(CDT)
                data += g * (x - r)
        else:
            r = tl.load(r_ptr + n * C + cm).to(CDT)
            g = tl.load(g_ptr + plane + offs, mask=ok, other=0.0).to(CDT)
            x = tl.load(x_ptr + plane + offs, mask=ok, other=0.0).to(CDT)
            data = g * (x - r)
        lap = _neighbour(theta_ptr, plane, h, w, -1, 0, H, W, ok, m, CDT)
        lap += _neighbour(theta_ptr, plane, h, w, 1, 0, H, W, ok, m, CDT)
        lap += _neighbour(theta_ptr, plane, h, w, 0, -1, H, W, ok, m, CDT)
        lap += _neighbour(theta_ptr, plane, h, w, 0, 1, H, W, ok, m, CDT)
        gm = data + sparse + tv * lap if P == 1 else data + sparse * m + tv * lap
        grad = gm * 2.0 * m * (1.0 - m)
        ma = _B1 * tl.load(ma_ptr + plane + offs, mask=ok, other=0.0).to(CDT) + (1.0 - _B1) * grad
        va = _B2 * tl.load(va_ptr + plane + offs, mask=ok, other=0.0).to(CDT) + (1.0 - _B2) * grad * grad
        theta = theta - step_size * ma / (tl.sqrt(va) * inv_sqrt_bc2 + _EPS)
        tl.store(theta_out + plane + offs, theta, mask=ok)
        tl.store(ma_out + plane + offs, ma, mask=ok)
        tl.store(va_out + plane + offs, va, mask=ok)


def _split(x: float):
    """x as float32 hi + float32 lo (hi + lo = x to ~2^−48 relative)."""
    x = float(x)
    hi = struct.unpack("f", struct.pack("f", x))[0]
    return hi, x - hi


def _cdt(dtype):
    return tl.float64 if opmath_dtype(dtype) == torch.float64 else tl.float32


def cd_mask_blend_triton(theta, x, r):
    """(m, x̃) for contiguous θ, x, r validated by robustfast.ops.cd_mask_step."""
    n, c, h, w = x.shape
    m, xt = torch.empty_like(theta), torch.empty_like(x)
    if x.numel() == 0:
        return m, xt
    grid = (n, triton.cdiv(h * w, BLOCK))
    wrap_triton(_blend_kernel)[grid](theta, x, r, m, xt, c, h * w, CM=theta.shape[1], CDT=_cdt(x.dtype),
                                     BLOCK=BLOCK)
    return m, xt


def cd_mask_step_triton(grad, x, r, theta, exp_avg, exp_avg_sq, step: int, lr: float, gamma: float, beta: float,
                        p: int, scale: float):
    """New (θ, M, V) for contiguous inputs validated by robustfast.ops.cd_mask_step."""
    n, c, h, w = x.shape
    cm = theta.shape[1]
    outs = torch.empty_like(theta), torch.empty_like(exp_avg), torch.empty_like(exp_avg_sq)
    if x.numel() == 0:
        return outs
    cdt = opmath_dtype(x.dtype)
    if p == 2:
        norm = torch.linalg.vector_norm(((torch.tanh(theta.to(cdt)) + 1) / 2).flatten(1), dim=1)
    else:
        norm = theta.new_empty(1, dtype=cdt)
    coefs = (lr / (1 - BETA1**step), (1 - BETA2**step) ** -0.5, scale * gamma, scale * 2 * beta / (cm * h * w))
    splits = [v for coef in coefs for v in _split(coef)]
    grid = (n, triton.cdiv(h * w, BLOCK))
    wrap_triton(_step_kernel)[grid](grad, x, r, theta, exp_avg, exp_avg_sq, norm, *outs, c, h, w, *splits, CM=cm, P=p,
                                    CDT=_cdt(x.dtype), BLOCK=BLOCK)
    return outs
