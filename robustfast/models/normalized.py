"""Normalisation inside the model, so every attack and loss sees images in [0, 1]."""
from __future__ import annotations

import torch
from torch import nn


class Normalized(nn.Module):
    """forward(x) = model((x − mean) / std), with per-channel mean and std held as buffers."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.numel() == 0 or mean.shape != std.shape:
            raise ValueError("mean and std must be per-channel sequences of one length, got "
                             f"{tuple(mean.shape)} and {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"std must be positive and mean and std finite, got mean={mean.tolist()}, "
                             f"std={std.tolist()}")
        self.model = model
        self.register_buffer("mean", mean.view(1, -1, 1, 1))
        self.register_buffer("std", std.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)
