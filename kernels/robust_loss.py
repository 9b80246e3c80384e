"""Triton kernels of the robust losses for noisy labels (see robustfast/reference/robust_loss.py, the definition).

Each program owns ROWS rows of the logits (several rows for small K, one for large K) and walks them in BLOCK-wide
chunks, so any K works. `_row_stats`, shared by forward and backward, makes
- an online sweep (running max m rescaled chunk by chunk): s = Σ_k e^{z_k−m}, Σ_k (z_k − m) and z_y, hence
  ℓ_k = (z_k − m) − ln s, S = Σ_k ℓ_k (a sum of non-positive terms, no cancellation) and ℓ_y;
- a second sweep, compiled in only for the kinds that need per-class terms once ln s is known: the clamped sums
  of RCE/NRCE (R = Σ_{k≠y} p̃_k, P = Σ_{k≠y, p_k≥1e−7} p_k and C = Σ_{k≠y, p_k<1e−7} p_k), of NGCE (T = Σ_k p̃_k^q,
  Σ_{k unclamped} p_k^q) and NFL's denominator D_F = Σ_k (1−p_k)^γ (−ℓ_k).
NFL's backward takes one more sweep (`_focal_sums`) for W = Σ_k w_k and U = Σ_k u_k (w_k = (1−p_k)^γ,
u_k = p_k w_k ℓ_k/(1−p_k)): D_F keeps its gradient through ℓ_k (the factors w_k detached unless DETACH is false,
as in the published code), which adds c_fw·w_j + c_fu·u_j to each element.
The forward maps the statistics to the loss; the backward recomputes them and writes, in one more sweep,
    dL/dz_j = g·[c_pe (p_j − e_j) + c_p p_j + c_0 + c_q p_j^q·1[unclamped] + p_j·(c_in if j≠y and unclamped
                 else c_out)]
with per-row coefficients (`_grad_coefs`; the reference's `_component_grad` term by term). As in the reference,
p_y − 1 is expm1(ℓ_y), and the RCE term A·p_j(1[j≠y, unclamped] − P) takes c_in = A(1 − P) = A(p_y + C) and
c_out = −AP from direct sums, free of cancellation (1 − P loses all of float32's digits when p_y is small, and
1 − p_y − C all of them when P is).

The kind compiles in as two constexprs, its active and its passive component (`COMPONENTS` of the reference), so
every kind is straight-line code. Arithmetic is float32 (float64 for float64 logits). 1 − p uses an expm1 with a
Taylor branch near 0 (accurate as p → 1, with no log involved), powers are taken in log space and p̃ = e^{max(ℓ,
ln 1e−7)} as in the reference. Hyperparameters travel as float32 (hi, lo) pairs so that the float64 kernels see
them to ~1e−15 (a plain float argument is float32 on the GPU).
Launch through `robust_loss_fwd_triton` / `robust_loss_bwd_triton`, which use `wrap_triton` so torch.compile can
trace the launch.
"""
import struct

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast._util.checks import opmath_dtype
from robustfast.reference.robust_loss import A, COMPONENTS, LOG_P_MIN

# Component codes: 0 = absent.
_ACTIVE_CODE = {None: 0, "ce": 1, "fl": 2, "gce": 3, "nce": 4, "nfl": 5, "ngce": 6}
_PASSIVE_CODE = {None: 0, "mae": 1, "rce": 2, "nmae": 3, "nrce": 4}

MAX_BLOCK = 2048     # widest chunk of one row
ROW_TILE = 1024      # small K: up to ROW_TILE // BLOCK rows per program,
MIN_PROGRAMS = 256   # but no fewer programs than this when B allows

_A = tl.constexpr(A)
_LOG_P_MIN = tl.constexpr(LOG_P_MIN)
_EXPM1_SERIES = tl.constexpr(0.35)  # |x| below: Taylor series to x^14 (truncation < 2e−17 relative)


@triton.jit
def _expm1(x):
    small = tl.abs(x) < _EXPM1_SERIES
    xs = tl.where(small, x, 0.0)
    r = xs * 0.0 + 1.0
    for i in tl.static_range(13):  # Horner: x(1 + x/2(1 + x/3(… (1 + x/14))))
        r = 1.0 + xs * r * (1.0 / (14 - i))
    return tl.where(small, xs * r, tl.exp(x) - 1.0)


@triton.jit
def _pow01(base, gamma):
    """base^γ for base in [0, 1], in log space, with torch.pow's 0^γ (0 for γ > 0, 1 for γ = 0)."""
    pos = base > 0
    return tl.where(pos, tl.exp(gamma * tl.log(tl.where(pos, base, 1.0))), tl.where(gamma == 0, 1.0, 0.0))


@triton.jit
def _hyper(hi, lo, CDT: tl.constexpr):
    return tl.cast(hi, CDT) + tl.cast(lo, CDT)


@triton.jit
def _row_stats(z_ptr, y_ptr, rows, rmask, K, gamma, q, ACT: tl.constexpr, PAS: tl.constexpr, CDT: tl.constexpr,
               ROWS: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    base = rows.to(tl.int64) * K
    y = tl.load(y_ptr + rows, mask=rmask, other=0)
    zero = tl.zeros([ROWS], dtype=CDT)
    # Sweep 1, online. Rows past B read as zeros, so every value stays finite.
    m = tl.load(z_ptr + base, mask=rmask, other=0.0).to(CDT)
    s = zero       # Σ e^{z−m}
    d = zero       # Σ (z − m), every term ≤ 0
    zy = zero
    for start in range(0, K, BLOCK):
        c = start + cols
        cm = c < K
        z = tl.load(z_ptr + base[:, None] + c[None, :], mask=rmask[:, None] & cm[None, :], other=0.0).to(CDT)
        zm = tl.where(cm[None, :], z, float("-inf"))
        m_new = tl.maximum(m, tl.max(zm, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(zm - m_new[:, None]), axis=1)
        d = d + start * (m - m_new) + tl.sum(tl.where(cm[None, :], z - m_new[:, None], 0.0), axis=1)
        zy += tl.sum(tl.where(c[None, :] == y[:, None], z, 0.0), axis=1)
        m = m_new
    log_s = tl.log(s)
    sum_logp = d - K * log_s
    logp_y = (zy - m) - log_s

    # Sweep 2, only where the kind needs per-class terms of p.
    rce_sum = zero
    rce_pass = zero
    rce_cut = zero
    pow_sum = zero
    pow_grad_sum = zero
    focal_norm = zero
    if (PAS == 2) or (PAS == 4) or (ACT == 5) or (ACT == 6):
        for start in range(0, K, BLOCK):
            c = start + cols
            cm = c < K
            z = tl.load(z_ptr + base[:, None] + c[None, :], mask=rmask[:, None] & cm[None, :], other=0.0).to(CDT)
            logp = (z - m[:, None]) - log_s[:, None]
            unclamped = logp >= _LOG_P_MIN
            log_pt = tl.maximum(logp, _LOG_P_MIN)
            valid = cm[None, :]
            if (PAS == 2) or (PAS == 4):
                other = valid & (c[None, :] != y[:, None])
                rce_sum += tl.sum(tl.where(other, tl.exp(log_pt), 0.0), axis=1)
                p = tl.exp(logp)
                rce_pass += tl.sum(tl.where(other & unclamped, p, 0.0), axis=1)
                rce_cut += tl.sum(tl.where(other & ~unclamped, p, 0.0), axis=1)
            if ACT == 6:
                pq = tl.exp(q * log_pt)
                pow_sum += tl.sum(tl.where(valid, pq, 0.0), axis=1)
                pow_grad_sum += tl.sum(tl.where(valid & unclamped, pq, 0.0), axis=1)
            if ACT == 5:
                focal_norm += tl.sum(tl.where(valid, _pow01(-_expm1(logp), gamma) * -logp, 0.0), axis=1)
    return y, m, log_s, sum_logp, logp_y, rce_sum, rce_pass, rce_cut, pow_sum, pow_grad_sum, focal_norm


@triton.jit
def _focal_u(logp, p, w):
    """u = p w ℓ/(1−p), with ℓ/(1−p) → −1 as p → 1."""
    not_p = -_expm1(logp)
    pos = not_p > 0
    return p * w * tl.where(pos, logp / tl.where(pos, not_p, 1.0), -1.0)


@triton.jit
def _focal_sums(z_ptr, rows, rmask, K, m, log_s, gamma, CDT: tl.constexpr, ROWS: tl.constexpr,
                BLOCK: tl.constexpr):
    """W = Σ_k (1−p_k)^γ and U = Σ_k u_k of NFL's gradient."""
    cols = tl.arange(0, BLOCK)
    base = rows.to(tl.int64) * K
    w_sum = tl.zeros([ROWS], dtype=CDT)
    u_sum = tl.zeros([ROWS], dtype=CDT)
    for start in range(0, K, BLOCK):
        c = start + cols
        cm = c < K
        z = tl.load(z_ptr + base[:, None] + c[None, :], mask=rmask[:, None] & cm[None, :], other=0.0).to(CDT)
        logp = (z - m[:, None]) - log_s[:, None]
        w = _pow01(-_expm1(logp), gamma)
        w_sum += tl.sum(tl.where(cm[None, :], w, 0.0), axis=1)
        u_sum += tl.sum(tl.where(cm[None, :], _focal_u(logp, tl.exp(logp), w), 0.0), axis=1)
    return w_sum, u_sum


@triton.jit
def _focal_factor(logp_y, not_p_y, gamma, DETACH: tl.constexpr):
    """The c of FL's c·(p − e): (1−p_y)^γ, times 1 − γ p_y ℓ_y/(1−p_y) (→ 1 + γ as p_y → 1) when the factor
    is differentiated (DETACH false)."""
    w = _pow01(not_p_y, gamma)
    if not DETACH:
        pos = not_p_y > 0
        ratio = tl.where(pos, logp_y / tl.where(pos, not_p_y, 1.0), -1.0)
        w = w * (1 - gamma * tl.exp(logp_y) * ratio)
    return w


@triton.jit
def _loss(K, gamma, q, logp_y, sum_logp, rce_sum, pow_sum, focal_norm, wa, wp,
          ACT: tl.constexpr, PAS: tl.constexpr):
    not_p_y = -_expm1(logp_y)
    gce_num = -_expm1(q * tl.maximum(logp_y, _LOG_P_MIN))
    loss = logp_y * 0.0
    if ACT == 1:
        loss += wa * -logp_y
    if ACT == 2:
        loss += wa * (_pow01(not_p_y, gamma) * -logp_y)
    if ACT == 3:
        loss += wa * (gce_num / q)
    if ACT == 4:
        loss += wa * (logp_y / sum_logp)
    if ACT == 5:
        loss += wa * (_pow01(not_p_y, gamma) * -logp_y / focal_norm)
    if ACT == 6:
        loss += wa * (gce_num / (K - pow_sum))
    if PAS == 1:
        loss += wp * not_p_y
    if PAS == 2:
        loss += wp * (_A * rce_sum)
    if PAS == 3:
        loss += wp * (not_p_y / (2 * (K - 1)))
    if PAS == 4:
        loss += wp * (rce_sum / (K - 1))
    return loss


@triton.jit
def _grad_coefs(K, gamma, q, logp_y, sum_logp, rce_pass, rce_cut, pow_sum, pow_grad_sum, focal_norm, wa, wp,
                ACT: tl.constexpr, PAS: tl.constexpr, DETACH: tl.constexpr):
    """Per-row (c_pe, c_p, c_0, c_q, c_in, c_out) of the gradient form in the module docstring."""
    p_y = tl.exp(logp_y)
    not_p_y = -_expm1(logp_y)
    p_y_q = tl.where(logp_y >= _LOG_P_MIN, tl.exp(q * logp_y), 0.0)
    c_pe = logp_y * 0.0
    c_p = c_pe
    c_0 = c_pe
    c_q = c_pe
    c_in = c_pe
    c_out = c_pe
    if ACT == 1:
        c_pe += wa
    if ACT == 2:
        c_pe += wa * _focal_factor(logp_y, not_p_y, gamma, DETACH)
    if ACT == 3:
        c_pe += wa * p_y_q
    if ACT == 4:
        inv_s = 1.0 / sum_logp
        dn = wa * logp_y * inv_s * inv_s
        c_pe += -wa * inv_s
        c_p += K * dn
        c_0 -= dn
    if ACT == 5:
        c_pe += wa * _focal_factor(logp_y, not_p_y, gamma, DETACH) / focal_norm
    if ACT == 6:
        inv_den = 1.0 / (K - pow_sum)
        gce_num = -_expm1(q * tl.maximum(logp_y, _LOG_P_MIN))
        dn = wa * q * gce_num * inv_den * inv_den
        c_pe += wa * q * p_y_q * inv_den
        c_q += dn
        c_p -= dn * pow_grad_sum
    if PAS == 1:
        c_pe += wp * p_y
    if PAS == 3:
        c_pe += wp * p_y / (2 * (K - 1))
    if (PAS == 2) or (PAS == 4):
        sc = wp * _A if PAS == 2 else wp / (K - 1)
        c_in += sc * (p_y + rce_cut)
        c_out -= sc * rce_pass
    return c_pe, c_p, c_0, c_q, c_in, c_out


@triton.jit
def _robust_loss_fwd_kernel(z_ptr, y_ptr, loss_ptr, B, K, wa_hi, wa_lo, wp_hi, wp_lo, gamma_hi, gamma_lo,
                            q_hi, q_lo, ACT: tl.constexpr, PAS: tl.constexpr, ROWS: tl.constexpr,
                            BLOCK: tl.constexpr):
    CDT: tl.constexpr = loss_ptr.dtype.element_ty
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < B
    gamma = _hyper(gamma_hi, gamma_lo, CDT)
    q = _hyper(q_hi, q_lo, CDT)
    _, _, _, sum_logp, logp_y, rce_sum, _, _, pow_sum, _, focal_norm = _row_stats(
        z_ptr, y_ptr, rows, rmask, K, gamma, q, ACT, PAS, CDT, ROWS, BLOCK)
    loss = _loss(K, gamma, q, logp_y, sum_logp, rce_sum, pow_sum, focal_norm, _hyper(wa_hi, wa_lo, CDT),
                 _hyper(wp_hi, wp_lo, CDT), ACT, PAS)
    tl.store(loss_ptr + rows, loss, mask=rmask)


@triton.jit
def _robust_loss_bwd_kernel(g_ptr, z_ptr, y_ptr, dz_ptr, B, K, wa_hi, wa_lo, wp_hi, wp_lo, gamma_hi, gamma_lo,
                            q_hi, q_lo, ACT: tl.constexpr, PAS: tl.constexpr, DETACH: tl.constexpr,
                            ROWS: tl.constexpr, BLOCK: tl.constexpr):
    CDT: tl.constexpr = g_ptr.dtype.element_ty
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    rmask = rows < B
    gamma = _hyper(gamma_hi, gamma_lo, CDT)
    q = _hyper(q_hi, q_lo, CDT)
    y, m, log_s, sum_logp, logp_y, _, rce_pass, rce_cut, pow_sum, pow_grad_sum, focal_norm = _row_stats(
        z_ptr, y_ptr, rows, rmask, K, gamma, q, ACT, PAS, CDT, ROWS, BLOCK)
    wa = _hyper(wa_hi, wa_lo, CDT)
    wp = _hyper(wp_hi, wp_lo, CDT)
    c_pe, c_p, c_0, c_q, c_in, c_out = _grad_coefs(K, gamma, q, logp_y, sum_logp, rce_pass, rce_cut, pow_sum,
                                                   pow_grad_sum, focal_norm, wa, wp, ACT, PAS, DETACH)
    c_fw = logp_y * 0.0
    c_fu = c_fw
    if ACT == 5:
        # ∇(N/D) = ∇N/D − (N/D²)∇D, ∂D/∂z_j = −w_j + p_j W (+ γ(u_j − p_j U) when not detached)
        w_sum, u_sum = _focal_sums(z_ptr, rows, rmask, K, m, log_s, gamma, CDT, ROWS, BLOCK)
        r = wa * (_pow01(-_expm1(logp_y), gamma) * -logp_y) / (focal_norm * focal_norm)
        c_fw += r
        c_p -= r * w_sum
        if not DETACH:
            c_fu -= gamma * r
            c_p += gamma * r * u_sum
    g = tl.load(g_ptr + rows, mask=rmask, other=0.0).to(CDT)
    c_fw = (g * c_fw)[:, None]
    c_fu = (g * c_fu)[:, None]
    c_pe = (g * c_pe)[:, None]
    c_p = (g * c_p)[:, None]
    c_0 = (g * c_0)[:, None]
    c_q = (g * c_q)[:, None]
    c_in = (g * c_in)[:, None]
    c_out = (g * c_out)[:, None]
    p_y_m1 = _expm1(logp_y)[:, None]  # p_y − 1 of p − e, precise as p_y → 1
    base = rows.to(tl.int64) * K
    cols = tl.arange(0, BLOCK)
    for start in range(0, K, BLOCK):
        c = start + cols
        mask = rmask[:, None] & (c < K)[None, :]
        z_raw = tl.load(z_ptr + base[:, None] + c[None, :], mask=mask, other=0.0)
        logp = (z_raw.to(CDT) - m[:, None]) - log_s[:, None]
        p = tl.exp(logp)
        is_y = c[None, :] == y[:, None]
        dz = c_pe * tl.where(is_y, p_y_m1, p) + c_p * p + c_0
        if ACT == 6:
            dz += c_q * tl.where(logp >= _LOG_P_MIN, tl.exp(q * logp), 0.0)
        if ACT == 5:
            w = _pow01(-_expm1(logp), gamma)
            dz += c_fw * w + c_fu * _focal_u(logp, p, w)
        if (PAS == 2) or (PAS == 4):
            dz += p * tl.where((logp >= _LOG_P_MIN) & ~is_y, c_in, c_out)
        tl.store(dz_ptr + base[:, None] + c[None, :], dz.to(dz_ptr.dtype.element_ty), mask=mask)


def _split(x: float):
    """x as float32 hi + float32 lo (hi + lo = x to ~2^−48 relative)."""
    x = float(x)
    hi = struct.unpack("f", struct.pack("f", x))[0]
    return hi, x - hi


def _launch(kind: str, alpha, beta, gamma, q, B: int, K: int):
    if kind not in COMPONENTS:
        raise ValueError(f"unknown robust loss kind {kind!r}")
    active, passive = COMPONENTS[kind]
    block = min(triton.next_power_of_2(K), MAX_BLOCK)
    rows = max(1, min(ROW_TILE // block, triton.next_power_of_2(max(1, B // MIN_PROGRAMS))))
    hyper = (*_split(alpha), *_split(beta), *_split(gamma), *_split(q))
    meta = {"ACT": _ACTIVE_CODE[active], "PAS": _PASSIVE_CODE[passive], "ROWS": rows, "BLOCK": block,
            "num_warps": 8 if block >= 2048 else 4}
    return (triton.cdiv(B, rows),), hyper, meta


def robust_loss_fwd_triton(logits, labels, kind: str, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5,
                           q: float = 0.7, detach_focal_factor: bool = True) -> torch.Tensor:
    """Per-sample loss (B,), float32 (float64 for float64 logits), of contiguous logits (B, K) and int64 labels
    (B,), validated by the caller (robustfast.ops). The loss does not depend on detach_focal_factor (taken for
    the op's one schema)."""
    B, K = logits.shape
    loss = torch.empty(B, dtype=opmath_dtype(logits.dtype), device=logits.device)
    if B == 0:
        return loss
    grid, hyper, meta = _launch(kind, alpha, beta, gamma, q, B, K)
    wrap_triton(_robust_loss_fwd_kernel)[grid](logits, labels, loss, B, K, *hyper, **meta)
    return loss


def robust_loss_bwd_triton(grad_loss, logits, labels, kind: str, alpha: float = 1.0, beta: float = 1.0,
                           gamma: float = 0.5, q: float = 0.7, detach_focal_factor: bool = True) -> torch.Tensor:
    """grad_loss[:, None] · d loss / d logits, (B, K) in the logits' dtype; inputs as for the forward, and
    grad_loss (B,)."""
    B, K = logits.shape
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)
    if B == 0 or K == 0:
        return grad
    grad_loss = grad_loss.to(opmath_dtype(logits.dtype)).contiguous()
    grid, hyper, meta = _launch(kind, alpha, beta, gamma, q, B, K)
    wrap_triton(_robust_loss_bwd_kernel)[grid](grad_loss, logits, labels, grad, B, K, *hyper,
                                               DETACH=bool(detach_focal_factor), **meta)
    return grad
