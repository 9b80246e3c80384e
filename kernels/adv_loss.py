"""Triton kernels of adv_loss (see robustfast/reference/adv_loss.py, the definition): each program owns ROWS rows of
the clean and adversarial logits, held whole in registers (BLOCK ≥ K columns), and computes both log-softmaxes,
the KL and the kind's terms in one pass; the backward recomputes them and writes both gradients.

KIND compiles in as a constexpr (0 kl, 1 trades, 2 mart). Arithmetic is float32 (float64 for float64 logits);
β travels as a float32 (hi, lo) pair so the float64 kernels see it exactly.
"""
import struct

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast._util.checks import opmath_dtype
from robustfast.reference.adv_loss import KINDS, MART_LOG_EPS, MART_MARGIN, MART_WEIGHT

MAX_K = 16384       # one row in registers
ROW_TILE = 2048     # elements per program for small K

_EPS = tl.constexpr(MART_LOG_EPS)
_MARGIN = tl.constexpr(MART_MARGIN)
_WEIGHT = tl.constexpr(MART_WEIGHT)


@triton.jit
def _log_softmax(z, cm):
    z = tl.where(cm, z, float("-inf"))
    zm = z - tl.max(z, axis=1)[:, None]
    lz = zm - tl.log(tl.sum(tl.exp(zm), axis=1))[:, None]
    return tl.where(cm, lz, 0.0), tl.where(cm, tl.exp(lz), 0.0)


@triton.jit
def _row_terms(a_ptr, b_ptr, y_ptr, pid, B, K, KIND: tl.constexpr, CDT: tl.constexpr, ROWS: tl.constexpr,
               BLOCK: tl.constexpr):
    rows = pid * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    rmask = rows < B
    cm = (cols < K)[None, :]
    offs = rows.to(tl.int64)[:, None] * K + cols[None, :]
    mask = rmask[:, None] & cm
    la, p = _log_softmax(tl.load(a_ptr + offs, mask=mask, other=0.0).to(CDT), cm)
    lb, q = _log_softmax(tl.load(b_ptr + offs, mask=mask, other=0.0).to(CDT), cm)
    y = tl.load(y_ptr + rows, mask=rmask, other=0)
    is_y = cols[None, :] == y[:, None]
    log_q = tl.where(cm, tl.log(q + _EPS), 0.0) if KIND == 2 else lb
    kl = tl.sum(p * (la - log_q), axis=1)
    return rows, rmask, offs, mask, cm, la, p, lb, q, is_y, log_q, kl


@triton.jit
def _hat(q, is_y, cm, cols):
    """One-hot of ŷ (the highest class of q other than y, the first on ties) and q_ŷ."""
    masked = tl.where(is_y | ~cm, -1.0, q)
    best = tl.max(masked, axis=1)
    idx = tl.min(tl.where(masked == best[:, None], cols[None, :], 2147483647), axis=1)
    hat = cols[None, :] == idx[:, None]
    return hat, best


@triton.jit
def _adv_loss_fwd_kernel(a_ptr, b_ptr, y_ptr, out_ptr, B, K, beta_hi, beta_lo, KIND: tl.constexpr,
                         ROWS: tl.constexpr, BLOCK: tl.constexpr):
    CDT = out_ptr.dtype.element_ty
    beta = tl.cast(beta_hi, CDT) + tl.cast(beta_lo, CDT)
    rows, rmask, _offs, _mask, cm, la, p, lb, q, is_y, _log_q, kl = _row_terms(
        a_ptr, b_ptr, y_ptr, tl.program_id(0), B, K, KIND, CDT, ROWS, BLOCK)
    if KIND == 0:
        loss = kl
    elif KIND == 1:
        loss = -tl.sum(tl.where(is_y, la, 0.0), axis=1) + beta * kl
    else:
        _, q_hat = _hat(q, is_y, cm, tl.arange(0, BLOCK))
        p_y = tl.sum(tl.where(is_y, p, 0.0), axis=1)
        loss = (-tl.sum(tl.where(is_y, lb, 0.0), axis=1) - tl.log(-q_hat + _MARGIN + _EPS)
                + beta * kl * (-p_y + _WEIGHT))
    tl.store(out_ptr + rows, loss, mask=rmask)


@triton.jit
def _adv_loss_bwd_kernel(g_ptr, a_ptr, b_ptr, y_ptr, da_ptr, db_ptr, B, K, beta_hi, beta_lo, KIND: tl.constexpr,
                         ROWS: tl.constexpr, BLOCK: tl.constexpr):
    CDT = g_ptr.dtype.element_ty
    beta = tl.cast(beta_hi, CDT) + tl.cast(beta_lo, CDT)
    rows, rmask, offs, mask, cm, la, p, lb, q, is_y, log_q, kl = _row_terms(
        a_ptr, b_ptr, y_ptr, tl.program_id(0), B, K, KIND, CDT, ROWS, BLOCK)
    g = tl.load(g_ptr + rows, mask=rmask, other=0.0).to(CDT)[:, None]
    onehot = tl.where(is_y, 1.0, 0.0)
    if KIND == 2:
        w = (-tl.sum(tl.where(is_y, p, 0.0), axis=1) + _WEIGHT)[:, None]
        r = q / (q + _EPS)
        pr = tl.sum(p * r, axis=1)[:, None]
        hat, q_hat = _hat(q, is_y, cm, tl.arange(0, BLOCK))
        q_hat = q_hat[:, None]
        db = (q - onehot) + q_hat / (-q_hat + _MARGIN + _EPS) * (tl.where(hat, 1.0, 0.0) - q) \
            + beta * w * (q * pr - p * r)
        p_y = tl.sum(tl.where(is_y, p, 0.0), axis=1)[:, None]
        da = beta * (w * p * (la - log_q - kl[:, None]) - kl[:, None] * p_y * (onehot - p))
    else:
        da = p * (la - lb - kl[:, None])
        db = q - p
        if KIND == 1:
            da = (p - onehot) + beta * da
            db = beta * db
    tl.store(da_ptr + offs, (g * da).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, (g * db).to(db_ptr.dtype.element_ty), mask=mask)


def _launch(kind: str, beta: float, B: int, K: int):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if K > MAX_K:
        raise ValueError(f"adv_loss (Triton): at most {MAX_K} classes, got K = {K}")
    block = triton.next_power_of_2(K)
    rows = max(1, min(ROW_TILE // block, triton.next_power_of_2(B)))
    hi = struct.unpack("f", struct.pack("f", float(beta)))[0]
    meta = {"KIND": KINDS.index(kind), "ROWS": rows, "BLOCK": block, "num_warps": 8 if block >= 2048 else 4}
    return (triton.cdiv(B, rows),), (hi, float(beta) - hi), meta


def adv_loss_fwd_triton(clean_logits, adv_logits, labels, kind: str, beta: float) -> torch.Tensor:
    """Per-row loss (B,) in the compute precision, of contiguous (B, K) logits and int64 labels, validated by the
    caller (robustfast.ops.adv_loss)."""
    B, K = clean_logits.shape
    loss = torch.empty(B, dtype=opmath_dtype(clean_logits.dtype), device=clean_logits.device)
    if B == 0:
        return loss
    grid, beta_pair, meta = _launch(kind, beta, B, K)
    wrap_triton(_adv_loss_fwd_kernel)[grid](clean_logits, adv_logits, labels, loss, B, K, *beta_pair, **meta)
    return loss


def adv_loss_bwd_triton(grad_loss, clean_logits, adv_logits, labels, kind: str, beta: float):
    """(grad_loss[:, None]·∂loss/∂clean_logits, grad_loss[:, None]·∂loss/∂adv_logits)."""
    B, K = clean_logits.shape
    grad_a = torch.empty_like(clean_logits, memory_format=torch.contiguous_format)
    grad_b = torch.empty_like(adv_logits, memory_format=torch.contiguous_format)
    if B == 0:
        return grad_a, grad_b
    grad_loss = grad_loss.to(opmath_dtype(clean_logits.dtype)).contiguous()
    grid, beta_pair, meta = _launch(kind, beta, B, K)
    wrap_triton(_adv_loss_bwd_kernel)[grid](grad_loss, clean_logits, adv_logits, labels, grad_a, grad_b, B, K,
                                            *beta_pair, **meta)
    return grad_a, grad_b
