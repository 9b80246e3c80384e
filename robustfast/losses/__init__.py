"""Robust losses for learning with noisy labels: normalized losses and Active Passive Loss (Ma et al., 2020)."""
from robustfast.losses.apl import (
    CE,
    GCE,
    MAE,
    NCE,
    NFL,
    NGCE,
    NMAE,
    NRCE,
    RCE,
    SCE,
    FocalLoss,
    NCEandMAE,
    NCEandRCE,
    NFLandMAE,
    NFLandRCE,
    NGCEandMAE,
    NGCEandRCE,
    RobustLoss,
)
from robustfast.losses.functional import DEFAULTS, LOSSES, robust_loss

MODULES = {cls.kind: cls for cls in (CE, FocalLoss, MAE, RCE, GCE, SCE, NCE, NFL, NGCE, NMAE, NRCE, NCEandRCE,
                                     NCEandMAE, NFLandRCE, NFLandMAE, NGCEandRCE, NGCEandMAE)}

__all__ = ["CE", "DEFAULTS", "GCE", "LOSSES", "MAE", "MODULES", "NCE", "NFL", "NGCE", "NMAE", "NRCE", "RCE", "SCE",
           "FocalLoss", "NCEandMAE", "NCEandRCE", "NFLandMAE", "NFLandRCE", "NGCEandMAE", "NGCEandRCE", "RobustLoss",
           "robust_loss"]
