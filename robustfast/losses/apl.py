"""One nn.Module per loss of the normalized-loss / Active Passive Loss family.

Each is built as `Loss(num_classes, *, reduction="mean", **hyperparameters)` with the hyperparameters that
apply to it (see robustfast.losses.functional.robust_loss) and called as `loss(logits, labels)`:

    criterion = NCEandRCE(num_classes=10, alpha=1.0, beta=1.0)
    loss = criterion(model(images), labels)
"""
from __future__ import annotations

from torch import nn

from robustfast.losses.functional import _robust_loss, check_reduction, resolve_hyperparameters


class RobustLoss(nn.Module):
    kind: str

    def __init__(self, num_classes: int, *, reduction: str = "mean", **hyperparameters):
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        check_reduction(reduction)
        self.num_classes = num_classes
        self.reduction = reduction
        try:
            self.hyperparameters = resolve_hyperparameters(self.kind, hyperparameters)
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None

    def forward(self, logits, labels):
        return _robust_loss(logits, labels, self.kind, self.hyperparameters, self.reduction, self.num_classes)

    def extra_repr(self) -> str:
        h = ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items())
        return f"num_classes={self.num_classes}, {h}, reduction={self.reduction!r}"


class CE(RobustLoss):
    """Cross entropy, α·(−log p_y)."""
    kind = "ce"


class FocalLoss(RobustLoss):
    """Focal loss, α·(−(1−p_y)^γ log p_y); the factor is detached unless detach_focal_factor=False."""
    kind = "fl"


class MAE(RobustLoss):
    """Mean absolute error in the published reduced form, β·(1 − p_y)."""
    kind = "mae"


class RCE(RobustLoss):
    """Reverse cross entropy, β·A·Σ_{k≠y} clamp(p_k, 1e−7), A = −ln 1e−4."""
    kind = "rce"


class GCE(RobustLoss):
    """Generalized cross entropy, α·(1 − p_y^q)/q."""
    kind = "gce"


class SCE(RobustLoss):
    """Symmetric cross entropy, α·CE + β·RCE."""
    kind = "sce"


class NCE(RobustLoss):
    """Normalized cross entropy, α·log p_y / Σ_k log p_k."""
    kind = "nce"


class NFL(RobustLoss):
    """Normalized focal loss, α·FL / Σ_k −(1−p_k)^γ log p_k. As in the published code, every factor (1−p)^γ
    (the numerator's and the denominator's) is detached and the gradient flows through each log p; with
    detach_focal_factor=False nothing is detached."""
    kind = "nfl"


class NGCE(RobustLoss):
    """Normalized generalized cross entropy, α·(1 − p_y^q) / (K − Σ_k p_k^q)."""
    kind = "ngce"


class NMAE(RobustLoss):
    """Normalized MAE, β·(1 − p_y) / (2(K−1))."""
    kind = "nmae"


class NRCE(RobustLoss):
    """Normalized RCE, β·RCE / (A(K−1)): the paper's normaliser. The published code multiplies by (K−1)/4 instead
    (an operator-precedence slip); robustfast deliberately does not copy it."""
    kind = "nrce"


class NCEandRCE(RobustLoss):
    """APL: α·NCE + β·RCE."""
    kind = "nce+rce"


class NCEandMAE(RobustLoss):
    """APL: α·NCE + β·MAE."""
    kind = "nce+mae"


class NFLandRCE(RobustLoss):
    """APL: α·NFL + β·RCE."""
    kind = "nfl+rce"


class NFLandMAE(RobustLoss):
    """APL: α·NFL + β·MAE."""
    kind = "nfl+mae"


class NGCEandRCE(RobustLoss):
    """APL: α·NGCE + β·RCE."""
    kind = "ngce+rce"


class NGCEandMAE(RobustLoss):
    """APL: α·NGCE + β·MAE."""
    kind = "ngce+mae"
