"""Local intrinsic dimensionality: per-point LID estimates (robustfast.ops.knn_lid underneath), their log-scale
summaries, and the LDReg regulariser."""
from robustfast.lid.estimate import ESTIMATORS, fisher_rao_distance, gmean, lid, log_mean, log_var
from robustfast.lid.ldreg import LDReg, gather_detached

__all__ = ["ESTIMATORS", "LDReg", "fisher_rao_distance", "gather_detached", "gmean", "lid", "log_mean", "log_var"]
