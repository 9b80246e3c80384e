"""Fused ops: each validates its inputs once, picks a backend through robustfast._backend, and runs."""
from robustfast.ops.apply_triggers import apply_triggers
from robustfast.ops.pgd_step import pgd_random_init, pgd_step
from robustfast.ops.robust_loss import robust_loss

__all__ = ["apply_triggers", "pgd_random_init", "pgd_step", "robust_loss"]
