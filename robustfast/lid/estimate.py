"""LID per point from its k nearest neighbours, and the Fisher–Rao view of a set of LIDs (spec ldreg_lid.md §2):
the Fréchet mean of LIDs under the Fisher–Rao distance |ln(θ₂/θ₁)| is their geometric mean, and their Fréchet
variance is the variance of ln LID."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from robustfast.ops.knn_lid import knn_lid

ESTIMATORS = ("mle", "mom")


def lid(features: torch.Tensor, k: int | Sequence[int] = 20, estimator: str = "mle",
        reference: torch.Tensor | None = None, form: str = "literature") -> torch.Tensor:
    """One LID estimate per row of `features` (N, D) from its k nearest neighbours in `reference` (default: the
    features themselves, each point's own row excluded). A sequence of k gives (N, len(k)).

    estimator: "mle" (maximum likelihood) or "mom" (method of moments). form: "literature" (Amsaleg et al. / Ma et
    al.), "levina-bickel" (MLE over k − 1 terms) or "ldreg" (the LDReg reference code; its k is capped at N − 2 of
    the features, as there). Differentiable w.r.t. the features (and the reference).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")
    if form == "ldreg" and isinstance(features, torch.Tensor):
        cap = features.shape[0] - 2
        k = min(k, cap) if isinstance(k, int) else [min(v, cap) for v in k]
    out = knn_lid(features, reference, k=k, form=form)
    return out.mle if estimator == "mle" else out.mom


def _check_lids(lids) -> None:
    if not isinstance(lids, torch.Tensor) or not lids.is_floating_point() or lids.numel() == 0:
        raise ValueError("lids must be a non-empty floating-point tensor of LID estimates")


def log_mean(lids: torch.Tensor) -> torch.Tensor:
    """mean(ln LID): the Fréchet mean on the log scale."""
    _check_lids(lids)
    return lids.log().mean()


def log_var(lids: torch.Tensor) -> torch.Tensor:
    """var(ln LID) (population variance): the Fréchet variance under the Fisher–Rao distance."""
    _check_lids(lids)
    return lids.log().var(correction=0)


def gmean(lids: torch.Tensor) -> torch.Tensor:
    """exp(mean ln LID): the geometric mean, the Fréchet mean of LIDs under the Fisher–Rao distance."""
    return log_mean(lids).exp()


def fisher_rao_distance(lid_a: torch.Tensor, lid_b: torch.Tensor) -> torch.Tensor:
    """|ln(LID_b / LID_a)|, elementwise: the asymptotic Fisher–Rao distance between two local distance
    distributions (LID = 1, the 1-D uniform, is at distance |ln LID| from a point of LID LID)."""
    return (torch.as_tensor(lid_b).log() - torch.as_tensor(lid_a).log()).abs()
