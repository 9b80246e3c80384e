"""Fused ops: each module registers its op with robustfast._backend.register_op when imported (this list is the
index: one line per op) and exposes a function that validates its inputs once and calls the op."""
from robustfast.ops.adv_loss import adv_loss
from robustfast.ops.apply_triggers import apply_triggers
from robustfast.ops.cd_mask_step import cd_mask_blend, cd_mask_step
from robustfast.ops.knn_lid import KnnLid, knn_lid
from robustfast.ops.nc_stamp import nc_stamp
from robustfast.ops.pgd_step import check_step_values, pgd_random_init, pgd_step
from robustfast.ops.robust_loss import robust_loss
from robustfast.ops.segmented_batch_norm import segmented_batch_norm
from robustfast.ops.token_cosine import token_cosine, token_cosine_profile

__all__ = ["KnnLid", "adv_loss", "apply_triggers", "cd_mask_blend", "cd_mask_step", "check_step_values", "knn_lid",
           "nc_stamp", "pgd_random_init", "pgd_step", "robust_loss", "segmented_batch_norm", "token_cosine",
           "token_cosine_profile"]
