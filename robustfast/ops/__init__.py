"""Fused ops: each module registers its op with robustfast._backend.register_op when imported (this list is the
index: one line per op) and exposes a function that validates its inputs once and calls the op."""
from robustfast.ops.apply_triggers import apply_triggers
from robustfast.ops.knn_lid import KnnLid, knn_lid
from robustfast.ops.nc_stamp import nc_stamp
from robustfast.ops.pgd_step import check_step_values, pgd_random_init, pgd_step
from robustfast.ops.robust_loss import robust_loss

__all__ = ["KnnLid", "apply_triggers", "check_step_values", "knn_lid", "nc_stamp", "pgd_random_init", "pgd_step",
           "robust_loss"]
