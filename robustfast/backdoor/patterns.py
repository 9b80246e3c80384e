"""Seeded recipes for the trigger patterns that the reference code loaded from files or drew without a seed.

Every function returns values in [0, 1] (8-bit levels k/255 where the reference pattern was an 8-bit image), on
the CPU in float64; triggers scale them to the image's range. Recipes follow specs/multi_trigger.md §2; they are
not bit-identical to the paper's files.
"""
from __future__ import annotations

import math

import torch

CHECKER = ((0, 0, 1), (0, 1, 0), (1, 0, 1))  # the BadNets grid, rows top to bottom


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def checker(size: int = 3) -> torch.Tensor:
    """(size, size) 0/1 checkerboard; size 3 is the BadNets grid (0,0,1 / 0,1,0 / 1,0,1)."""
    if size == 3:
        return torch.tensor(CHECKER, dtype=torch.float64)
    i = torch.arange(size)
    return ((i[:, None] + i[None, :] + size + 1) % 2).double()


def uniform_levels(shape, seed: int) -> torch.Tensor:
    """Uniform 8-bit noise U{0..255}/255 of `shape`, from `seed`."""
    return torch.randint(0, 256, tuple(shape), generator=generator(seed)).double() / 255


def sinusoid_stripes(height: int, width: int, frequency: float = 6) -> torch.Tensor:
    """(H, W) SIG signal: S(i, j) = ⌊127.5(1 + sin(2π f j / W))⌋ / 255, vertical stripes along the columns."""
    j = torch.arange(width, dtype=torch.float64)
    row = torch.floor(127.5 * (1 + torch.sin(2 * math.pi * frequency * j / width))) / 255
    return row.expand(height, width).clone()


def trojan_block(seed: int, size: int = 3, channels: int = 3) -> torch.Tensor:
    """(channels, size, size) integers U{1..250}/255 with one entry set to 0: the additive Trojan patch."""
    g = generator(seed)
    block = torch.randint(1, 251, (channels * size * size,), generator=g)
    block[torch.randint(0, block.numel(), (1,), generator=g)] = 0
    return block.view(channels, size, size).double() / 255


def _dct_basis(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix (n, n): row u is the u-th cosine."""
    i = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis


def smooth_field(channels: int, height: int, width: int, seed: int, keep: int = 4,
                 strength: float = 0.2) -> torch.Tensor:
    """(C, H, W) Smooth pattern Q: seeded Gaussian noise low-passed to its lowest keep×keep DCT coefficients per
    channel, then min-max scaled to [0, strength]."""
    noise = torch.randn(channels, height, width, generator=generator(seed), dtype=torch.float64)
    bh, bw = _dct_basis(height), _dct_basis(width)
    coef = bh @ noise @ bw.T
    coef[:, keep:, :] = 0
    coef[:, :, keep:] = 0
    low = bh.T @ coef @ bw
    return strength * (low - low.min()) / (low.max() - low.min())


def warp_field(height: int, width: int, grid_size: int | None, gen: torch.Generator, count: int = 1) -> torch.Tensor:
    """(count, H, W, 2) WaNet displacement fields with mean |value| 1 per field.

    grid_size k: U(−1, 1) on a k×k grid, normalised, upsampled bicubically (align_corners) to H×W — the original
    WaNet's smooth field. None: U(−1, 1) drawn per pixel (the multi-trigger code's fresh field)."""
    side = (grid_size, grid_size) if grid_size is not None else (height, width)
    field = torch.rand(count, 2, *side, generator=gen, dtype=torch.float64) * 2 - 1
    field = field / field.abs().mean(dim=(1, 2, 3), keepdim=True)
    if grid_size is not None:
        field = torch.nn.functional.interpolate(field, size=(height, width), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1)


# Nashville (specs/multi_trigger.md §2), as the multi-trigger code runs it: pilgram's nashville on 8-bit PIL images.
# Stages 1-2 act per channel (a lookup curve), 3 and 6 are colour matrices, 4-5 per-channel curves again; PIL
# quantises after every stage, which is why the filter runs as two passes (see robustfast.backdoor.Nashville).
NASHVILLE_DARKEN = ((247, 176, 153), 0.56)
NASHVILLE_LIGHTEN = ((0, 70, 150), 0.4)
NASHVILLE_SEPIA, NASHVILLE_CONTRAST, NASHVILLE_BRIGHTNESS, NASHVILLE_SATURATION = 0.2, 1.2, 1.05, 1.2


def _overlay(v: torch.Tensor, colour, opacity: float, blend) -> torch.Tensor:
    """A solid `colour` at `opacity` composited over 8-bit levels v (3, 256) with a separable blend mode, in PIL's
    integer arithmetic: the opacity becomes the 8-bit alpha a = round(255·opacity), and each of the two terms
    a·B(v, colour) and (255 − a)·v is divided by 255 and truncated (ImageChops.multiply), then added."""
    a = round(opacity * 255)
    colour = torch.tensor(colour, dtype=torch.int64)[:, None]
    return (torch.div(a * blend(v, colour), 255, rounding_mode="floor")
            + torch.div((255 - a) * v, 255, rounding_mode="floor")).clamp(0, 255)


def nashville_curves() -> torch.Tensor:
    """(3, 256) per-channel curves of stages 1-2 at the 8-bit levels, exactly as PIL computes them: darken
    (per-channel min) with (247,176,153) at opacity 0.56 (alpha 143/255), then lighten (max) with (0,70,150)
    at 0.4 (alpha 102/255), each composite in PIL's truncating integer arithmetic (see _overlay)."""
    v = torch.arange(256, dtype=torch.int64).expand(3, 256)
    (dark, a), (light, b) = NASHVILLE_DARKEN, NASHVILLE_LIGHTEN
    v = _overlay(v, dark, a, torch.minimum)
    v = _overlay(v, light, b, torch.maximum)
    return v.double() / 255


def nashville_tone_curves() -> torch.Tensor:
    """(3, 256) per-channel curves of stages 4-5 at the 8-bit levels: W3C contrast 1.2, v·c + 255·(0.5 − 0.5c),
    then brightness ×1.05, each rounded half to even (Python's round, as PIL's point tables are built) and
    clipped to [0, 255]."""
    v = torch.arange(256, dtype=torch.float64)
    c = NASHVILLE_CONTRAST
    v = torch.round(v * c + (-127.5 * c) + 127.5).clamp(0, 255)
    v = torch.round(v * NASHVILLE_BRIGHTNESS).clamp(0, 255)
    return (v / 255).expand(3, 256).clone()


def colour_map(matrix: torch.Tensor) -> torch.Tensor:
    """(C, C+1) affine colour map with no offset from a (C, C) matrix."""
    return torch.cat([matrix, torch.zeros(matrix.shape[0], 1, dtype=matrix.dtype)], dim=1)


def sepia_matrix(amount: float) -> torch.Tensor:
    """The W3C sepia filter matrix (3, 3) at `amount`."""
    s = 1 - amount
    return torch.tensor([
        [0.393 + 0.607 * s, 0.769 - 0.769 * s, 0.189 - 0.189 * s],
        [0.349 - 0.349 * s, 0.686 + 0.314 * s, 0.168 - 0.168 * s],
        [0.272 - 0.272 * s, 0.534 - 0.534 * s, 0.131 + 0.869 * s],
    ], dtype=torch.float64)


def saturation_matrix(amount: float) -> torch.Tensor:
    """The W3C saturate filter matrix (3, 3): extrapolates away from the luma grey for amount > 1."""
    s = amount
    return torch.tensor([
        [0.213 + 0.787 * s, 0.715 - 0.715 * s, 0.072 - 0.072 * s],
        [0.213 - 0.213 * s, 0.715 + 0.285 * s, 0.072 - 0.072 * s],
        [0.213 - 0.213 * s, 0.715 - 0.715 * s, 0.072 + 0.928 * s],
    ], dtype=torch.float64)
