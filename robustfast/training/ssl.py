"""Self-supervised pieces shared by the method packages: two-view augmentation, MLP heads, and the SimCLR and
BYOL losses (moved here from robustfast.lid.ssl, which imports them)."""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn


def augment(x: torch.Tensor, generator: torch.Generator, min_scale: float = 0.6, noise: float = 0.05):
    """Light augmentations of a batch N×C×H×W in [0, 1]: a random resized crop (side scale in [min_scale, 1],
    aspect ratio in [3/4, 4/3], anywhere inside the image), resampled bilinearly, plus Gaussian noise of std
    `noise`, clamped to [0, 1]. Draws from `generator` (on x's device)."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=generator, device=x.device, dtype=x.dtype)
    scale = min_scale + (1 - min_scale) * u[:, 0]
    aspect = torch.exp(math.log(3 / 4) + math.log(16 / 9) * u[:, 1]).sqrt()
    sx, sy = (scale * aspect).clamp(max=1), (scale / aspect).clamp(max=1)
    tx, ty = (1 - sx) * (2 * u[:, 2] - 1), (1 - sy) * (2 * u[:, 3] - 1)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out + noise * torch.randn(out.shape, generator=generator, device=x.device, dtype=x.dtype)
    return out.clamp(0, 1)


def mlp(dims: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims[:-1]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's per-sample contrastive loss (2B,): each view's partner is the positive, the other 2B − 2 views
    the negatives, cosine similarity over `temperature`."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, partner, reduction="none")


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 − 2·cos(p, z) per sample, z detached (the momentum branch's target)."""
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)
