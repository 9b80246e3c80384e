"""A frozen, BatchNorm-folded copy of a model: what the attack loops (APGD, the unlearnable δ phase) run on."""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse


def frozen_eval_copy(model: nn.Module) -> nn.Module:
    """A copy of the eval-mode `model` with frozen parameters, every BatchNorm that follows a convolution or linear
    layer folded into its weights (torch.fx), in channels_last. It computes the eval-mode model's function, rounded
    differently: on a CPU a forward and input-backward pass costs less per row than the model's own. The model is
    not touched. A model torch.fx cannot trace is copied without folding, with a warning."""
    try:
        folded = fuse(model)
    except Exception as err:
        warnings.warn(f"torch.fx cannot trace the model ({type(err).__name__}: {err}); its BatchNorm layers are not "
                      "folded", stacklevel=3)
        folded = copy.deepcopy(model)
    return folded.eval().requires_grad_(False).to(memory_format=torch.channels_last)
