"""robust_loss: the functional form of every loss in robustfast.losses, and the input checks they share."""
from __future__ import annotations

import math
import numbers

import torch

from robustfast import ops
from robustfast.reference import robust_loss as reference

LOSSES = reference.LOSSES
REDUCTIONS = ("mean", "sum", "none")


def _defaults(kind: str) -> dict:
    """The hyperparameters `kind` takes and their defaults: the CIFAR-10 configs of the published code."""
    active, passive = reference.COMPONENTS[kind]
    out = {}
    if active is not None:
        out["alpha"] = 1.0
    if passive is not None:
        out["beta"] = 1.0
    if active in ("fl", "nfl"):
        out.update(gamma=0.5, detach_focal_factor=True)
    if active == "gce":
        out["q"] = 0.7
    if active == "ngce":
        out["q"] = 0.1
    if kind == "sce":
        out["alpha"] = 0.1
    return out


DEFAULTS = {kind: _defaults(kind) for kind in LOSSES}


def check_kind(kind) -> str:
    if not isinstance(kind, str) or kind.lower() not in DEFAULTS:
        raise ValueError(f"kind must be one of {', '.join(LOSSES)}; got {kind!r}")
    return kind.lower()


def resolve_hyperparameters(kind: str, given: dict) -> dict:
    """`kind`'s defaults overridden by `given`; a name that does not apply to `kind` or a bad value raises."""
    allowed = DEFAULTS[kind]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"hyperparameter {unknown[0]!r} does not apply to {kind!r}, which takes "
                         f"{', '.join(allowed)}")
    out = {**allowed, **given}
    for name, value in out.items():
        if name == "detach_focal_factor":
            if not isinstance(value, bool):
                raise ValueError(f"detach_focal_factor must be True or False, got {value!r}")
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if name == "q" and not 0 < value <= 1:
            raise ValueError(f"q must lie in (0, 1], got {value}")
        if name != "q" and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        out[name] = float(value)
    return out


def check_reduction(reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")


def _robust_loss(logits, labels, kind: str, hyperparameters: dict, reduction: str, num_classes: int | None = None):
    """Checked per-sample loss of `kind`, reduced. `kind` and `hyperparameters` are already resolved."""
    h = {"alpha": 1.0, "beta": 1.0, "gamma": 0.5, "q": 0.7, "detach_focal_factor": True, **hyperparameters}
    per_sample = ops.robust_loss(logits, labels, kind, num_classes=num_classes, **h)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def robust_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, *, reduction: str = "mean",
                **hyperparameters) -> torch.Tensor:
    """The loss `kind` (one of LOSSES: "ce", "fl", "mae", "rce", "gce", "sce", "nce", "nfl", "ngce", "nmae",
    "nrce", "nce+rce", "nce+mae", "nfl+rce", "nfl+mae", "ngce+rce", "ngce+mae") of logits (B, K) against integer
    labels (B,), reduced by `reduction` ("mean", "sum" or "none").

    Every kind is α·active + β·passive: a single active loss (CE, FL, GCE, NCE, NFL, NGCE) takes `alpha` as its
    scale, a single passive one (MAE, RCE, NMAE, NRCE) takes `beta`; FL and NFL take `gamma` and
    `detach_focal_factor`, GCE and NGCE take `q`. A hyperparameter that does not apply to `kind` raises.
    Defaults (`DEFAULTS`) are the CIFAR-10 configs: α = β = 1, γ = 0.5, q = 0.7 (GCE) or 0.1 (NGCE), and
    α = 0.1, β = 1 for SCE. The definitions and the choices made about the published code are in
    robustfast.reference.robust_loss.
    """
    kind = check_kind(kind)
    check_reduction(reduction)
    return _robust_loss(logits, labels, kind, resolve_hyperparameters(kind, hyperparameters), reduction)
