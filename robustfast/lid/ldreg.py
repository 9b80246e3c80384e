"""LDReg: local dimensionality regularisation for self-supervised learning (Huang et al., ICLR 2024).

The regulariser pushes up each sample's LID, estimated by the method of moments against a detached reference
(spec ldreg_lid.md §3). `LDReg(beta, k, form)(features)` returns the term to add to the SSL loss:
    l1          −β·mean_i ln LID_i                          (paper, Eq. 3)
    l2          −β·(mean_i (ln LID_i)²)^{1/2}               (paper, Eq. 3)
    ldreg-code  −β·mean_i |ln LID_i|                        (the reference code, both of its options)
The paper's forms use the literature method of moments, LID = μ/(r_k − μ) with μ the mean of the k nearest
distances. "ldreg-code" is the reference code's regulariser throughout, estimator included: its `lid_mom_est`
averages the k − 1 nearest non-self distances, LID = m/(r_k − m), m = mean(r_1 … r_{k−1}) (knn_lid's
form="ldreg"; at k = 16 the two estimates differ by about 7 %).
With torch.distributed initialised, the reference is the features gathered from every rank (detached); each
local feature's own row in it is excluded by index.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from robustfast._util.checks import is_int, is_real
from robustfast.ops.knn_lid import knn_lid

FORMS = ("l1", "l2", "ldreg-code")
MAX_BETA = 1e6  # |ln LID| stays far below 1e30, so beta·reg cannot overflow float32


def gather_detached(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(t detached and concatenated over ranks, this rank's row offset in it); (t.detach(), 0) without
    torch.distributed. Every rank must pass the same number of rows."""
    t = t.detach()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t, 0
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts), dist.get_rank() * t.shape[0]


class LDReg(nn.Module):
    """The LDReg term for a batch of encoder features (B, D).

    beta: weight (the paper: 0.01 for SimCLR, 0.005 for BYOL). k: neighbours (the paper: 64 at batch 2048),
    capped at B − 2 as in the reference code. form: l1, l2 or ldreg-code (see the module docstring).
    """

    def __init__(self, beta: float = 0.01, k: int = 64, form: str = "l1"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}; got {form!r}")
        if not is_int(k) or k < 2:
            raise ValueError(f"k must be an int >= 2, got {k!r}")
        # inf and NaN make the term non-finite; so does a huge beta in float32 (the papers use 0.005-0.01)
        if not (is_real(beta) and 0 <= beta <= MAX_BETA):
            raise ValueError(f"beta must be a finite number in [0, {MAX_BETA:g}], got {beta!r}")
        self.beta, self.k, self.form = float(beta), k, form

    def log_lid(self, features: torch.Tensor, reference: torch.Tensor | None = None, offset: int = 0):
        """ln LID (B,) of each feature row, method of moments (the code's k − 1 mean for form="ldreg-code"),
        against the detached reference.

        reference: the local reference set (default: the features); `features` are its rows offset … offset + B − 1.
        It is gathered across ranks when torch.distributed is initialised.
        """
        local = features if reference is None else reference
        ref, rank_offset = gather_detached(local)
        k = min(self.k, features.shape[0] - 2)
        estimator_form = "ldreg" if self.form == "ldreg-code" else "literature"
        return knn_lid(features, ref, k=k, form=estimator_form, self_offset=rank_offset + offset).mom.log()

    def forward(self, features: torch.Tensor, reference: torch.Tensor | None = None, offset: int = 0):
        log_lid = self.log_lid(features, reference, offset)
        if self.form == "l1":
            reg = -log_lid.mean()
        elif self.form == "l2":
            reg = -log_lid.square().mean().sqrt()
        else:
            reg = -log_lid.abs().mean()
        return self.beta * reg

    def extra_repr(self) -> str:
        return f"beta={self.beta}, k={self.k}, form={self.form!r}"
