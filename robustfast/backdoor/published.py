"""Cognitive Distillation written the way the published code runs it (HanxunH/CognitiveDistillation's standalone
module): the benchmark's baseline for `robustfast bench cd`.

The weights are left trainable, so every backward also computes and accumulates their gradients; the colours are
drawn on the host each step and copied over; mask, blend, L1 norm, squared TV and the loss are separate eager ops;
torch.optim.Adam(betas=(0.1, 0.1)) steps the mask parameter. As in the published code the batch mean (1/B)
scales the objective. Unlike it, the preprocessing (if any) is applied to both the masked and the clean image.
"""
from __future__ import annotations

import torch
from torch import nn


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    _, c, h, w = mask.shape
    tv_h = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).pow(2).sum(dim=[1, 2, 3])
    tv_w = (mask[:, :, :, 1:] - mask[:, :, :, :-1]).pow(2).sum(dim=[1, 2, 3])
    return (tv_h + tv_w) / (c * h * w)


def published_cd_masks(model: nn.Module, images: torch.Tensor, gamma: float = 0.01, beta: float = 1.0,
                       lr: float = 0.1, steps: int = 100, p: int = 1, mask_channels: int = 1, preprocess=None,
                       seed: int = 0, colour_fn=None) -> torch.Tensor:
    """CD-L masks (N, mask_channels, H, W) of `images`, the published way. colour_fn(step, b, c), if given,
    replaces the host draw of the colours (for parity tests against the fused loop)."""
    model.eval()
    prep = preprocess if preprocess is not None else (lambda x: x)
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w = images.shape
    mask_param = nn.Parameter(torch.ones(b, mask_channels, h, w, device=images.device, dtype=images.dtype))
    optimizer = torch.optim.Adam([mask_param], lr=lr, betas=(0.1, 0.1))
    logits = model(prep(images)).detach()
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        mask = (torch.tanh(mask_param) + 1) / 2
        r = torch.rand(b, c, 1, 1, generator=gen) if colour_fn is None else colour_fn(step, b, c)
        x_adv = images * mask + (1 - mask) * r.to(images.device, images.dtype)
        adv_logits = model(prep(x_adv))
        loss = torch.abs(adv_logits - logits).mean(dim=1)
        norm = torch.norm(mask, p=p, dim=[1, 2, 3])
        loss_total = (loss + gamma * norm + beta * total_variation(mask)).mean()
        loss_total.backward()
        optimizer.step()
    return ((torch.tanh(mask_param) + 1) / 2).detach()
