"""Fused ops: each validates its inputs once, picks a backend through robustfast._backend, and runs."""
from robustfast.ops.apply_triggers import apply_triggers
from robustfast.ops.knn_lid import KnnLid, knn_lid
from robustfast.ops.pgd_step import pgd_random_init, pgd_step
from robustfast.ops.robust_loss import robust_loss

__all__ = ["KnnLid", "apply_triggers", "knn_lid", "pgd_random_init", "pgd_step", "robust_loss"]
