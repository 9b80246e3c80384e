"""Triton kernels of knn_lid (see robustfast/reference/knn_lid.py, the definition).

Two launches, neither materialising the M×N distance matrix:

1. `_knn_select_kernel`: a program owns BM queries and streams the reference in tiles of KP rows (KP = the
   next power of two ≥ max(k), at least 16). Each tile's squared distances come from the GEMM form
   ‖q‖² + ‖r‖² − 2q·r with `tl.dot(..., input_precision="ieee")` (plain fp32 / fp64 FMAs, never TF32), are
   clamped at 0 and packed with their column into one int64 key, (bits of d² as float32) << 32 | column (the
   bits of a non-negative float are ordered as integers), so integer order is distance order, ties broken by
   index, and every key is unique. The query's own row (self_offset + i) and columns past N become INT64_MAX,
   masked by index. The best max(k) keys per row stay unsorted in registers with their maximum (the threshold);
   while some row's smallest tile key beats its threshold, that key replaces the threshold's slot. After the
   first tiles a tile rarely improves a row, so the loop usually runs zero or one time (no sort network: also
   what keeps the Triton interpreter fast enough for the tests).
2. `_knn_finish_kernel`: per query, the exact distances ‖q − r_j‖ by differences for the kept rows (the GEMM
   form leaves residues of ~1e−7‖q‖² that would make duplicates look apart), their ranks by (distance, index)
   (a KP×KP comparison), the sorted distances and indices written out, and every requested estimator and k
   computed from the same registers.

For float64 data the selection orders by d² rounded to float32 (the key has 32 bits for it); the distances,
their order and the estimators are float64.
Launch through `knn_lid_triton`, which uses `wrap_triton` so torch.compile can trace the launches.
"""
import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast.reference.knn_lid import FORMS, LDREG_LOG_EPS, MIN_RATIO

_FORM_CODE = {name: i for i, name in enumerate(FORMS)}  # 0 literature, 1 levina-bickel, 2 ldreg
_EMPTY = tl.constexpr(0x7FFFFFFFFFFFFFFF)
_MIN_RATIO = tl.constexpr(MIN_RATIO)
_LDREG_LOG_EPS = tl.constexpr(LDREG_LOG_EPS)

SELECT_ROWS = 64   # BM of the selection kernel
FINISH_ROWS = 16   # BM of the epilogue kernel on a GPU (a 3-d tile BM × KP × 32); 64 under the interpreter
FEATURE_BLOCK = 32


@triton.jit
def _knn_select_kernel(q_ptr, r_ptr, qn_ptr, rn_ptr, keys_ptr, M, N, D, KMAX, self_offset,
                       BM: tl.constexpr, KP: tl.constexpr, BD: tl.constexpr):
    CDT: tl.constexpr = q_ptr.dtype.element_ty
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    rmask = rows < M
    qbase = rows.to(tl.int64) * D
    qn = tl.load(qn_ptr + rows, mask=rmask, other=0.0)
    self_col = tl.where(self_offset >= 0, rows + self_offset, -1)
    slots = tl.arange(0, KP)
    feats = tl.arange(0, BD)
    # KMAX live slots with distinct sentinels, so that the slot holding a row's worst key is always unique; the
    # slots past KMAX hold −1, below every key, and are never replaced
    best = tl.where(slots[None, :] < KMAX, _EMPTY - slots[None, :].to(tl.int64), -1)
    best = tl.broadcast_to(best, [BM, KP])
    worst = tl.max(best, axis=1)
    for n0 in range(0, N, KP):
        cols = n0 + slots
        cmask = cols < N
        rbase = cols.to(tl.int64) * D
        dot = tl.zeros([BM, KP], dtype=CDT)
        for d0 in range(0, D, BD):
            f = d0 + feats
            fmask = f < D
            q = tl.load(q_ptr + qbase[:, None] + f[None, :], mask=rmask[:, None] & fmask[None, :], other=0.0)
            r = tl.load(r_ptr + rbase[:, None] + f[None, :], mask=cmask[:, None] & fmask[None, :], other=0.0)
            dot += tl.dot(q, tl.trans(r), input_precision="ieee", out_dtype=CDT)
        rn = tl.load(rn_ptr + cols, mask=cmask, other=0.0)
        d2 = tl.maximum(qn[:, None] + rn[None, :] - 2.0 * dot, 0.0)
        key = (d2.to(tl.float32).to(tl.int32, bitcast=True).to(tl.int64) << 32) | cols[None, :].to(tl.int64)
        skip = (cols[None, :] == self_col[:, None]) | ~cmask[None, :]
        key = tl.where(skip, _EMPTY, key)
        low = tl.min(key, axis=1)
        # move the tile's smallest key into the worst slot while it beats it, in every row at once
        while tl.max((low < worst).to(tl.int32), axis=0) > 0:
            take = low < worst
            best = tl.where(take[:, None] & (best == worst[:, None]), low[:, None], best)
            key = tl.where(key == low[:, None], _EMPTY, key)
            worst = tl.max(best, axis=1)
            low = tl.min(key, axis=1)
    tl.store(keys_ptr + rows.to(tl.int64)[:, None] * KP + slots[None, :], best, mask=rmask[:, None])


@triton.jit
def _knn_finish_kernel(q_ptr, r_ptr, keys_ptr, ks_ptr, dist_ptr, idx_ptr, mle_ptr, mom_ptr, M, D, KMAX, NK,
                       FORM: tl.constexpr, BM: tl.constexpr, KP: tl.constexpr, BD: tl.constexpr):
    CDT: tl.constexpr = q_ptr.dtype.element_ty
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    rmask = rows < M
    slots = tl.arange(0, KP)
    keep = rmask[:, None] & (slots[None, :] < KMAX)
    keys = tl.load(keys_ptr + rows.to(tl.int64)[:, None] * KP + slots[None, :], mask=keep, other=0)
    idx = tl.where(keep, keys & 0x7FFFFFFF, 0)
    feats = tl.arange(0, BD)
    ss = tl.zeros([BM, KP], dtype=CDT)
    for d0 in range(0, D, BD):
        f = d0 + feats
        fmask = (f < D)[None, None, :]
        q = tl.load(q_ptr + rows.to(tl.int64)[:, None, None] * D + f[None, None, :],
                    mask=rmask[:, None, None] & fmask, other=0.0)
        r = tl.load(r_ptr + idx[:, :, None] * D + f[None, None, :], mask=keep[:, :, None] & fmask, other=0.0)
        diff = q - r
        ss += tl.sum(diff * diff, axis=2)
    dist = tl.where(keep, tl.sqrt(ss), float("inf"))
    # rank of slot i: how many slots come before it in (distance, index) order
    before = (dist[:, None, :] < dist[:, :, None]) | (
        (dist[:, None, :] == dist[:, :, None]) & (idx[:, None, :] < idx[:, :, None]))
    rank = tl.sum(before.to(tl.int32), axis=2)
    out = rows.to(tl.int64)[:, None] * KMAX + rank
    tl.store(dist_ptr + out, dist, mask=keep)
    tl.store(idx_ptr + out, idx, mask=keep)
    dist = tl.where(keep, dist, 1.0)  # finite stand-ins where nothing is kept, so no lane computes inf/inf
    for t in range(NK):
        k = tl.load(ks_ptr + t)
        w = tl.sum(tl.where(keep & (rank == k - 1), dist, 0.0), axis=1)[:, None]
        w = tl.where(rmask[:, None], w, 1.0)
        if FORM == 2:
            head = keep & (rank < k - 1)
            logs = tl.sum(tl.where(head, tl.log(dist / w + _LDREG_LOG_EPS), 0.0), axis=1)
            mle = -k / tl.where(rmask, logs, -1.0)
            m = tl.sum(tl.where(head, dist, 0.0), axis=1) / (k - 1)
        else:
            terms = k if FORM == 0 else k - 1
            floor = _MIN_RATIO * w
            logs = tl.sum(tl.where(keep & (rank < terms), tl.log(tl.maximum(dist, floor) / w), 0.0), axis=1)
            mle = -terms / tl.where(rmask, logs, -1.0)
            m = tl.sum(tl.where(keep & (rank < k), dist, 0.0), axis=1) / k
        w1 = tl.sum(w, axis=1)
        tl.store(mle_ptr + rows.to(tl.int64) * NK + t, mle, mask=rmask)
        tl.store(mom_ptr + rows.to(tl.int64) * NK + t, m / (w1 - m), mask=rmask)


def slots_for(kmax: int) -> int:
    """KP: the width of the per-row buffer and of a reference tile."""
    return max(16, triton.next_power_of_2(kmax))


def knn_lid_triton(queries: torch.Tensor, reference: torch.Tensor, ks: list[int], form: str, self_offset: int):
    """(distances (M, kmax), indices (M, kmax) int64, mle (M, len(ks)), mom (M, len(ks))) of contiguous float32
    or float64 queries (M, D) and reference (N, D), validated by the caller (robustfast.ops.knn_lid)."""
    M, D = queries.shape
    N = reference.shape[0]
    kmax, nk = max(ks), len(ks)
    dev, dt = queries.device, queries.dtype
    dist = torch.empty(M, kmax, dtype=dt, device=dev)
    idx = torch.empty(M, kmax, dtype=torch.int64, device=dev)
    mle = torch.empty(M, nk, dtype=dt, device=dev)
    mom = torch.empty(M, nk, dtype=dt, device=dev)
    if M == 0:
        return dist, idx, mle, mom
    kp = slots_for(kmax)
    keys = torch.empty(M, kp, dtype=torch.int64, device=dev)
    qn = queries.mul(queries).sum(1)
    rn = reference.mul(reference).sum(1)
    wrap_triton(_knn_select_kernel)[(triton.cdiv(M, SELECT_ROWS),)](
        queries, reference, qn, rn, keys, M, N, D, kmax, self_offset, BM=SELECT_ROWS, KP=kp, BD=FEATURE_BLOCK)
    ks_t = torch.tensor(ks, dtype=torch.int32, device=dev)
    finish_rows = FINISH_ROWS if dev.type == "cuda" else 64  # fewer, larger programs for the interpreter
    wrap_triton(_knn_finish_kernel)[(triton.cdiv(M, finish_rows),)](
        queries, reference, keys, ks_t, dist, idx, mle, mom, M, D, kmax, nk, FORM=_FORM_CODE[form],
        BM=finish_rows, KP=kp, BD=FEATURE_BLOCK)
    return dist, idx, mle, mom
