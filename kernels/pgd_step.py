"""Triton kernels of one projected-gradient step (see robustfast/reference/pgd_step.py for the definition).

L∞ is elementwise: a 2-D grid of (sample, block of elements). L2 needs two per-sample norms: one program per
sample walks its row three times (‖g‖, then ‖δ‖, then the write), keeping every value in opmath precision.
Launch through `pgd_step_triton`, which uses `wrap_triton` so torch.compile can trace the launch.
"""
import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast.kernels.common import clamp

GRAD_NORM_EPS = 1e-10
LINF_BLOCK = 1024
L2_MAX_BLOCK = 4096


@triton.jit
def _sign(g):
    return tl.where(g > 0, 1.0, tl.where(g < 0, -1.0, 0.0))


@triton.jit
def _pgd_linf_kernel(x_ptr, g_ptr, x0_ptr, active_ptr, alpha_ptr, eps_ptr, out_ptr, D, lower, upper,
                     BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < D
    base = row.to(tl.int64) * D
    alpha = tl.load(alpha_ptr + row)
    eps = tl.load(eps_ptr + row)
    active = tl.load(active_ptr + row) != 0
    x_raw = tl.load(x_ptr + base + offs, mask=mask)
    x = x_raw.to(alpha.dtype)
    g = tl.load(g_ptr + base + offs, mask=mask).to(alpha.dtype)
    x0 = tl.load(x0_ptr + base + offs, mask=mask).to(alpha.dtype)
    delta = clamp(x + alpha * _sign(g) - x0, -eps, eps)
    out = clamp(x0 + delta, lower, upper)
    out = tl.where(active, out.to(x_raw.dtype), x_raw)
    tl.store(out_ptr + base + offs, out, mask=mask)


@triton.jit
def _pgd_l2_kernel(x_ptr, g_ptr, x0_ptr, active_ptr, alpha_ptr, eps_ptr, out_ptr, D, lower, upper,
                   GRAD_EPS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    base = row.to(tl.int64) * D
    alpha = tl.load(alpha_ptr + row)
    eps = tl.load(eps_ptr + row)
    active = tl.load(active_ptr + row) != 0
    cols = tl.arange(0, BLOCK)

    g_sq = tl.zeros([BLOCK], dtype=alpha.dtype)
    for start in range(0, D, BLOCK):
        mask = start + cols < D
        g = tl.load(g_ptr + base + start + cols, mask=mask, other=0.0).to(alpha.dtype)
        g_sq += g * g
    scale = alpha / (tl.sqrt(tl.sum(g_sq, axis=0)) + GRAD_EPS)

    d_sq = tl.zeros([BLOCK], dtype=alpha.dtype)
    for start in range(0, D, BLOCK):
        mask = start + cols < D
        x = tl.load(x_ptr + base + start + cols, mask=mask, other=0.0).to(alpha.dtype)
        g = tl.load(g_ptr + base + start + cols, mask=mask, other=0.0).to(alpha.dtype)
        x0 = tl.load(x0_ptr + base + start + cols, mask=mask, other=0.0).to(alpha.dtype)
        delta = x + scale * g - x0
        d_sq += delta * delta
    # ‖δ‖ = 0 gives eps / 0 = inf, clamped to 1.
    factor = tl.minimum(eps / tl.sqrt(tl.sum(d_sq, axis=0)), 1.0)

    for start in range(0, D, BLOCK):
        mask = start + cols < D
        x_raw = tl.load(x_ptr + base + start + cols, mask=mask)
        x = x_raw.to(alpha.dtype)
        g = tl.load(g_ptr + base + start + cols, mask=mask).to(alpha.dtype)
        x0 = tl.load(x0_ptr + base + start + cols, mask=mask).to(alpha.dtype)
        delta = (x + scale * g - x0) * factor
        out = clamp(x0 + delta, lower, upper)
        out = tl.where(active, out.to(x_raw.dtype), x_raw)
        tl.store(out_ptr + base + start + cols, out, mask=mask)


def pgd_step_triton(x, grad, x0, active, alpha, eps, norm: str, lower: float, upper: float) -> torch.Tensor:
    """Launch on validated inputs sharing one dense, sample-major layout (robustfast.ops.pgd_step ensures it);
    the output takes that layout."""
    out = torch.empty_like(x)
    n = x.shape[0]
    d = x.numel() // n if n else 0
    if n == 0 or d == 0:
        return out.copy_(x)
    if norm == "Linf":
        grid = (n, triton.cdiv(d, LINF_BLOCK))
        wrap_triton(_pgd_linf_kernel)[grid](x, grad, x0, active, alpha, eps, out, d, lower, upper,
                                            BLOCK=LINF_BLOCK)
    else:
        block = min(triton.next_power_of_2(d), L2_MAX_BLOCK)
        wrap_triton(_pgd_l2_kernel)[(n,)](x, grad, x0, active, alpha, eps, out, d, lower, upper,
                                          GRAD_EPS=GRAD_NORM_EPS, BLOCK=block, num_warps=8 if block >= 2048 else 4)
    return out
