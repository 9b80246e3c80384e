"""Plain-PyTorch definition of knn_lid: each query's k nearest reference points and the LID estimates from them.

For query q_i with neighbour distances r_1 ≤ … ≤ r_k (w = r_k), per form (spec ldreg_lid.md §1):

    literature      MLE  −( (1/k) Σ_{j=1..k} ln(r̃_j / w) )^{−1}        MoM  μ/(w − μ),  μ = (1/k) Σ_{j=1..k} r_j
    levina-bickel   MLE  −( (1/(k−1)) Σ_{j=1..k−1} ln(r̃_j / w) )^{−1}  MoM  as literature
    ldreg           MLE  −k / Σ_{j=1..k−1} ln(r_j / w + 10⁻⁴)          MoM  m/(w − m),  m = (1/(k−1)) Σ_{j<k} r_j

Duplicates (r_j = 0): the MLE forms with a bare logarithm use r̃_j = max(r_j, MIN_RATIO·w), a floor relative to
r_k, so the estimate does not depend on the data's scale; a duplicate counts as a neighbour at 10⁻⁶·r_k and its
distance gets no gradient. The ldreg form keeps the reference code's +10⁻⁴ inside the log (also scale-free), and
MoM needs no floor. A query whose k-th distance is 0 (k or more exact duplicates), or whose k distances are all
equal, has no finite LID: the estimators give inf/NaN there and robustfast.ops.knn_lid raises.

Distances are exact differences (`cdist` without the GEMM form), in float32 (float64 for float64 data). When the
queries are (part of) the reference, `self_offset` says query i is reference row self_offset + i, and that row is
excluded by index, never by trusting a zero distance.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from robustfast._util.checks import opmath_dtype

FORMS = ("literature", "levina-bickel", "ldreg")
MIN_RATIO = 1e-6      # floor of r_j / r_k in the MLE logarithms (literature, levina-bickel)
LDREG_LOG_EPS = 1e-4  # the reference code's ln(r_j / r_k + 1e−4)


def knn(queries: torch.Tensor, reference: torch.Tensor, k: int, self_offset: int = -1):
    """(distances (M, k) ascending, indices (M, k) int64) of each query's k nearest reference rows, with reference
    row self_offset + i excluded for query i when self_offset >= 0. Materialises the M×N distance matrix."""
    dt = opmath_dtype(queries.dtype)
    dist = torch.cdist(queries.to(dt), reference.to(dt), compute_mode="donot_use_mm_for_euclid_dist")
    if self_offset >= 0:
        rows = torch.arange(queries.shape[0], device=queries.device)
        dist = dist.index_put((rows, rows + self_offset), torch.tensor(math.inf, dtype=dt, device=dist.device))
    return torch.topk(dist, k, dim=1, largest=False, sorted=True)


def estimators(dist: torch.Tensor, ks: Sequence[int], form: str = "literature"):
    """(mle, mom), each (M, len(ks)): the estimates from the first k columns of the sorted distances, per k."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}; got {form!r}")
    mle, mom = [], []
    for k in ks:
        r = dist[:, :k]
        w = r[:, k - 1:k]
        if form == "ldreg":
            mle.append(-k / torch.log(r[:, :k - 1] / w + LDREG_LOG_EPS).sum(dim=1))
            m = r[:, :k - 1].mean(dim=1, keepdim=True)
        else:
            terms = k if form == "literature" else k - 1
            floored = torch.maximum(r[:, :terms], MIN_RATIO * w)
            mle.append(-1.0 / torch.log(floored / w).mean(dim=1))
            m = r.mean(dim=1, keepdim=True)
        mom.append((m / (w - m)).squeeze(1))
    return torch.stack(mle, dim=1), torch.stack(mom, dim=1)


def estimator_grad(dist: torch.Tensor, ks: Sequence[int], form: str, grad_mle: torch.Tensor | None,
                   grad_mom: torch.Tensor | None) -> torch.Tensor:
    """Σ_k grad_mle[:, k]·∂MLE_k/∂r + grad_mom[:, k]·∂MoM_k/∂r, (M, kmax), in closed form (spec §6), without
    autograd: what the ops' backward uses. ∂LID/∂r = LID·∂ln LID/∂r."""
    out = torch.zeros_like(dist)
    mle = estimators(dist, ks, form)[0] if grad_mle is not None else None
    for t, k in enumerate(ks):
        r = dist[:, :k]
        w = r[:, k - 1]
        g = torch.zeros_like(r)
        if grad_mle is not None:
            lid, gm = mle[:, t], grad_mle[:, t]
            if form == "ldreg":
                head = r[:, :k - 1]
                dlid_dt = lid * lid / k                         # LID = −k/T, T = Σ_{j<k} ln(r_j/w + ε)
                denom = head + LDREG_LOG_EPS * w[:, None]
                g[:, :k - 1] += (gm * dlid_dt)[:, None] / denom
                g[:, k - 1] -= gm * dlid_dt * (head / (w[:, None] * denom)).sum(dim=1)
            else:
                terms = k if form == "literature" else k - 1
                head = r[:, :k - 1]                             # the j = k term, ln(w/w), is constant
                live = head > MIN_RATIO * w[:, None]            # floored terms are constant
                dlid_ds = (gm * lid * lid / terms)[:, None]     # LID = −1/S, S = (1/terms) Σ ln(r̃_j/w)
                g[:, :k - 1] += torch.where(live, dlid_ds / torch.where(live, head, 1.0), 0.0)
                g[:, k - 1] -= dlid_ds.squeeze(1) * live.sum(dim=1) / w
        if grad_mom is not None:
            n = k - 1 if form == "ldreg" else k
            m = r[:, :n].mean(dim=1)
            gm = grad_mom[:, t]
            inv = 1.0 / (w - m) ** 2
            g[:, :n] += (gm * w * inv / n)[:, None]               # ∂LID/∂m = w/(w − m)²
            g[:, k - 1] -= gm * m * inv                           # ∂LID/∂w (direct) = −m/(w − m)²
        out[:, :k] += g
    return out


def knn_lid(queries: torch.Tensor, reference: torch.Tensor, ks: Sequence[int], form: str = "literature",
            self_offset: int = -1):
    """(distances (M, kmax), indices (M, kmax), mle (M, len(ks)), mom (M, len(ks))), differentiable by autograd
    w.r.t. queries and reference. kmax = max(ks)."""
    dist, idx = knn(queries, reference, max(ks), self_offset)
    mle, mom = estimators(dist, ks, form)
    return dist, idx, mle, mom
