"""Plain-PyTorch definition of token_cosine: the mean cosine similarity between two token maps, per sample.

For a, b of shape (B, T, D) and a token mask S ⊆ {1..T}:

    token:  J = (1/|S|) Σ_{t∈S} cos(a_t, b_t)       flat:  J = cos(a_S, b_S), one cosine over the |S|·D vector
    cos(u, v) = u·v / (max(‖u‖, η)·max(‖v‖, η)),  η = 1e−8

An empty S gives J = 0 (and a zero gradient). Backward, per row u = a_t (or the flat vector), c = cos(u, v):

    ∂J/∂u = (g/n)·( v/(max(‖u‖,η)·max(‖v‖,η)) − [‖u‖ > η]·c·u/‖u‖² ),  n = |S| for token, 1 for flat

b gets no gradient. Arithmetic in float32 (float64 for float64 data); J is returned in that precision and the
gradient is rounded once to a's dtype.
"""
from __future__ import annotations

import torch

from robustfast._util.checks import opmath_dtype

ETA = 1e-8
REDUCTIONS = ("token", "flat")


def _rows(a, b, token_mask, reduction):
    """(u, v, weight) in compute precision: the rows the cosines are taken over, (B, R, K), and each row's weight
    (R,) in J. Masked-out tokens are zeroed (flat) or weighted 0 (token)."""
    compute = opmath_dtype(a.dtype)
    a, b = a.to(compute), b.to(compute)
    mask = token_mask.to(compute)
    if reduction == "flat":
        keep = mask[None, :, None]
        return (a * keep).flatten(1)[:, None], (b * keep).flatten(1)[:, None], (mask.sum() > 0).to(compute)[None]
    return a, b, mask / mask.sum().clamp(min=1)


def token_cosine(a, b, token_mask, reduction: str) -> torch.Tensor:
    u, v, weight = _rows(a, b, token_mask, reduction)
    cos = (u * v).sum(-1) / (u.norm(dim=-1).clamp(min=ETA) * v.norm(dim=-1).clamp(min=ETA))
    return (cos * weight).sum(-1)


def token_cosine_backward(grad, a, b, token_mask, reduction: str) -> torch.Tensor:
    u, v, weight = _rows(a, b, token_mask, reduction)
    nu, nv = u.norm(dim=-1, keepdim=True), v.norm(dim=-1, keepdim=True)
    mu, mv = nu.clamp(min=ETA), nv.clamp(min=ETA)
    cos = (u * v).sum(-1, keepdim=True) / (mu * mv)
    radial = torch.where(nu > ETA, cos * u / (nu * nu).clamp(min=ETA * ETA), torch.zeros_like(u))
    g = grad.to(u.dtype)[:, None, None] * weight[None, :, None] * (v / (mu * mv) - radial)
    if reduction == "flat":
        g = g.view(a.shape) * token_mask.to(u.dtype)[None, :, None]
    return g.to(a.dtype)
