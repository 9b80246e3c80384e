"""knn_lid: each query's k nearest reference points and the LID estimates (MLE, method of moments) from them,
streamed in tiles so that the M×N distance matrix never exists. robustfast.reference.knn_lid is the definition.

Backward (kernel backends): the estimators' closed-form derivatives give dL/dr (M, kmax) (an O(M·k) torch
computation, robustfast.reference.knn_lid.estimator_grad), and ∂r_ij/∂q_i = (q_i − x_j)/r_ij turns it into
gradients for the queries and the k neighbours of each, gathered through the saved indices: k-sparse, no second
distance pass. The gather is the op robustfast::knn_lid_backward: C++ for the cpp backend, chunked torch gathers
(`neighbour_grad`, its reference) for every other backend. The reference backend differentiates the same way.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch

from robustfast import _backend
from robustfast._util.checks import check_float_tensor, opmath_dtype
from robustfast.reference import knn_lid as reference_impl

FORMS = reference_impl.FORMS
_GRAD_CHUNK = 4096  # query rows per gather in the backward: memory chunk × kmax × D


class KnnLid(NamedTuple):
    distances: torch.Tensor  # (M, kmax) ascending, float32 (float64 for float64 data)
    indices: torch.Tensor    # (M, kmax) int64 rows of the reference
    mle: torch.Tensor        # (M,) for an int k, (M, len(k)) for a sequence
    mom: torch.Tensor


def _fake(queries, reference, ks, form, self_offset):
    m, kmax, nk = queries.shape[0], max(ks), len(ks)
    return (queries.new_empty(m, kmax), queries.new_empty(m, kmax, dtype=torch.int64), queries.new_empty(m, nk),
            queries.new_empty(m, nk))


def _fake_backward(queries, reference, distances, indices, grad_distances, reference_grad):
    rows = reference.shape[0] if reference_grad else 0
    return torch.empty_like(queries), reference.new_empty(rows, reference.shape[1])


def neighbour_grad(queries, reference, dist, idx, grad_dist, need_queries: bool, need_reference: bool):
    """(dL/dqueries or None, dL/dreference or None) from dL/dr (M, kmax): row i gets Σ_j g_ij (q_i − x_j)/r_ij and
    neighbour x_j the opposite; a zero distance (a duplicate) passes no gradient."""
    coef = torch.where(dist > 0, grad_dist / torch.where(dist > 0, dist, 1.0), 0.0)
    grad_q = torch.empty_like(queries) if need_queries else None
    grad_r = torch.zeros_like(reference) if need_reference else None
    for s in range(0, queries.shape[0], _GRAD_CHUNK):
        rows = idx[s:s + _GRAD_CHUNK]
        contrib = coef[s:s + _GRAD_CHUNK, :, None] * (queries[s:s + _GRAD_CHUNK, None, :] - reference[rows])
        if need_queries:
            grad_q[s:s + _GRAD_CHUNK] = contrib.sum(dim=1)
        if need_reference:
            grad_r.index_add_(0, rows.reshape(-1), contrib.reshape(-1, contrib.shape[-1]), alpha=-1)
    return grad_q, grad_r


def _reference_backward(queries, reference, distances, indices, grad_distances, reference_grad):
    grad_q, grad_r = neighbour_grad(queries, reference, distances, indices, grad_distances, True, reference_grad)
    return grad_q, grad_r if reference_grad else reference.new_empty(0, reference.shape[1])


def _setup_context(ctx, inputs, output):
    queries, reference, ks, form, _ = inputs
    ctx.save_for_backward(queries, reference, output[0], output[1])
    ctx.args = (ks, form)


def _backward(ctx, grad_dist, _grad_idx, grad_mle, grad_mom):
    queries, reference, dist, idx = ctx.saved_tensors
    ks, form = ctx.args
    g = reference_impl.estimator_grad(dist, ks, form, grad_mle, grad_mom)
    if grad_dist is not None:
        g = g + grad_dist
    need_q, need_r = ctx.needs_input_grad[:2]
    with _backend.use_backend(_backend.backward_backend(ctx.backend, "knn_lid_backward")):
        grad_q, grad_r = BACKWARD.call(queries, reference, dist, idx, g.contiguous(), need_r)
    return grad_q if need_q else None, grad_r if need_r else None, None, None, None


def _points(n: int, d: int, seed: int, device, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64)
    return (x + 3.0).to(device, dtype)


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Arguments for the registry tests: self-reference and a separate one, prime sizes, every form."""
    out = []
    for i, (m, n, d, ks, self_ref) in enumerate([(37, 37, 5, [2, 7], True), (23, 101, 64, [3, 16, 33], False),
                                                  (61, 61, 33, [12, 60], True)]):
        q = _points(m, d, 2 * i, device, dtype)
        r = q if self_ref else _points(n, d, 2 * i + 1, device, dtype)
        out.append((q, r, ks, FORMS[i % len(FORMS)], 0 if self_ref else -1))
    return out


def _backward_samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    out = []
    for i, (q, r, ks, form, offset) in enumerate(_samples(device, dtype)):
        dist, idx, _, _ = reference_impl.knn_lid(q, r, ks, form, offset)
        grad = torch.randn(dist.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        out.append((q, r, dist, idx, grad.to(device, dtype), i % 2 == 0))
    return out


DTYPES = (torch.float32, torch.float64)  # the op takes the compute dtype; knn_lid() converts half precision
BACKWARD = _backend.register_op(
    "knn_lid_backward",
    "(Tensor queries, Tensor reference, Tensor distances, Tensor indices, Tensor grad_distances, "
    "bool reference_grad) -> (Tensor grad_queries, Tensor grad_reference)",
    reference=_reference_backward, fake=_fake_backward, native=("cpp",), samples=_backward_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "knn_lid",
    "(Tensor queries, Tensor reference, int[] ks, str form, int self_offset) -> (Tensor distances, "
    "Tensor indices, Tensor mle, Tensor mom)",
    reference=reference_impl.knn_lid, fake=_fake, triton="robustfast.kernels.knn_lid:knn_lid_triton",
    native=("cpp",), backward=_backward, setup_context=_setup_context, samples=_samples, dtypes=DTYPES,
)


def _check_ks(k, available: int) -> list[int]:
    ks = [k] if isinstance(k, numbers.Integral) else list(k) if isinstance(k, Sequence) else None
    if not ks or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in ks):
        raise ValueError(f"k must be an int or a non-empty sequence of ints, got {k!r}")
    for v in ks:
        if v < 2:
            raise ValueError(f"k must be >= 2 (the estimators need two neighbour distances), got k = {v}")
        if v > available:
            raise ValueError(f"k = {v} needs more neighbours than the reference has: k must be <= {available} "
                             f"here (k < N, the number of reference points, when the queries are their own "
                             f"reference)")
    return [int(v) for v in ks]


def _check_points(t, name: str) -> None:
    check_float_tensor(t, name)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-d tensor of points (rows) × features, got shape {tuple(t.shape)}")


def _check_outputs(out, queries, reference, ks) -> None:
    """One host sync: NaN/inf in the data, or a query whose LID is not finite, is a ValueError."""
    flags = torch.stack([torch.isfinite(queries).all(), torch.isfinite(reference).all(),
                         torch.isfinite(out[2]).all() & torch.isfinite(out[3]).all()]).tolist()
    if not flags[0]:
        raise ValueError("queries contains NaN or inf")
    if not flags[1]:
        raise ValueError("reference contains NaN or inf")
    if flags[2]:
        return
    bad = (~torch.isfinite(out[2]) | ~torch.isfinite(out[3])).any(dim=1).nonzero()[0, 0].item()
    dist = out[0][bad]
    k = next(k for t, k in enumerate(ks) if not (torch.isfinite(out[2][bad, t]) and torch.isfinite(out[3][bad, t])))
    if dist[k - 1] == 0:
        raise ValueError(f"query {bad} has k = {k} or more exact duplicates in the reference (its k-th neighbour "
                         "distance is 0), so its LID is undefined; remove duplicate points or raise k")
    raise ValueError(f"query {bad}: its k = {k} neighbour distances are all equal ({dist[k - 1].item():.6g}), so "
                     "its LID estimate is infinite; raise k")


def knn_lid(queries: torch.Tensor, reference: torch.Tensor | None = None, *, k: int | Sequence[int] = 20,
            form: str = "literature", self_offset: int | None = None) -> KnnLid:
    """The k nearest neighbours of each row of `queries` among the rows of `reference`, and the LID estimates.

    queries (M, D), reference (N, D) float; reference=None uses the queries as their own reference and excludes
    each point's own row by index. self_offset: when the queries are rows self_offset … self_offset + M − 1 of a
    given reference (a batch inside a gathered reference), those rows are excluded the same way.
    k: an int, or several at once (one pass; mle/mom get a column per k). form: "literature" (default),
    "levina-bickel" (MLE over k − 1 terms) or "ldreg" (the LDReg reference code's forms); see
    robustfast.reference.knn_lid for the formulas and the duplicate policy.
    Distances are exact Euclidean distances in float32 (float64 for float64 data; no TF32); the neighbours are
    selected by the GEMM form in the kernels, so near-ties (relative gap ~1e−7) may be ordered differently from
    the reference. Differentiable w.r.t. queries and reference (k-sparse backward). Raises ValueError for NaN/inf
    data and for a query whose LID is not finite (k or more exact duplicates, or k equal distances). One host sync.
    """
    _check_points(queries, "queries")
    same = reference is None
    if same:
        reference, self_offset = queries, 0
    else:
        _check_points(reference, "reference")
        if reference.shape[1] != queries.shape[1]:
            raise ValueError(f"reference has D = {reference.shape[1]} features (columns) but queries has "
                             f"D = {queries.shape[1]}")
        if reference.device != queries.device:
            raise ValueError(f"reference is on {reference.device} but queries is on {queries.device}")
    m, n = queries.shape[0], reference.shape[0]
    if self_offset is None:
        self_offset = -1
    elif not isinstance(self_offset, numbers.Integral) or not 0 <= self_offset <= n - m:
        raise ValueError(f"self_offset must be an int in [0, {n - m}] (query i is reference row self_offset + i), "
                         f"got {self_offset!r}")
    ks = _check_ks(k, n - 1 if self_offset >= 0 else n)
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}; got {form!r}")

    dtype = opmath_dtype(queries.dtype)
    q = queries.to(dtype).contiguous()
    r = q if same else reference.to(dtype).contiguous()
    out = OP.call(q, r, ks, form, int(self_offset))
    _check_outputs(out, q, r, ks)
    dist, idx, mle, mom = out
    if isinstance(k, numbers.Integral):
        mle, mom = mle[:, 0], mom[:, 0]
    return KnnLid(dist, idx, mle, mom)
