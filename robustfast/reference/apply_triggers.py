"""Plain-PyTorch definition of `apply_triggers`: a batch whose images carry different triggers, poisoned at once.

Image n carries trigger k = trigger_ids[n] (−1: clean, returned unchanged). Each trigger is a fixed pipeline of
pixel stages switched on by bits of flags[k]; every value lives in the image's scale (hi = 1 for float images,
255 for uint8), and the arithmetic runs in float32 (float64 for float64 images):

    LUT     y_c = lut[k, c] read at y_c, linearly interpolated between its L nodes (node i at i·hi/(L−1));
            uint8 inputs land on nodes exactly
    COLOUR  y_c = Σ_j colour[k, c, j]·y_j + colour[k, c, C], clamped to [0, hi]       (C×(C+1) affine map)
    BLEND   y = y·(1 − w) + w·p with w = weight[k] (mask × α, per pixel and channel) and
            p = pattern[pattern_index[n]] (a fixed pattern per trigger, or a fresh one per image)
    ADD     y = y + additive[k]; then WRAP: y mod 256 (uint8 only, the legacy Trojan cast), else unless MINMAX:
            clamp to [0, hi]
    MINMAX  y = hi·(y − min y)/(max y − min y), min and max over the whole image (C×H×W); a constant image
            maps to 0
    then y is clamped to [0, hi]; uint8 outputs take ⌊y⌋ when TRUNCATE is set (the reference code's astype),
    else ⌊y + ½⌋.

w = 1 writes p exactly and w = 0 keeps y exactly, so masked overwrites are bit-exact on every backend.
Geometric triggers (WaNet) and learned ones (IAD) are not pixel pipelines: they run as batched torch stages
before this op (see robustfast.backdoor.stack).
"""
from __future__ import annotations

import torch

from robustfast._util.checks import opmath_dtype as compute_dtype

LUT, COLOUR, BLEND, ADD, MINMAX, WRAP, TRUNCATE = 1, 2, 4, 8, 16, 32, 64
ALL_FLAGS = LUT | COLOUR | BLEND | ADD | MINMAX | WRAP | TRUNCATE


def value_range(dtype: torch.dtype) -> float:
    """hi: the largest pixel value of images of `dtype` (255 for uint8, 1 for floats)."""
    return 255.0 if dtype == torch.uint8 else 1.0


def _on(flags: torch.Tensor, bit: int) -> torch.Tensor:
    """(N, 1, 1, 1) bool: which images' triggers have `bit` set."""
    return ((flags & bit) != 0).view(-1, 1, 1, 1)


def _interpolate(y: torch.Tensor, table: torch.Tensor, hi: float) -> torch.Tensor:
    """table (N, C, L) read at y (N, C, H, W), linear between nodes."""
    n, c, h, w = y.shape
    last = table.shape[-1] - 1
    pos = y * (last / hi)
    i0 = pos.floor().clamp(0, last - 1)
    frac = pos - i0
    idx = i0.long().reshape(n, c, h * w)
    lo = torch.gather(table, 2, idx).view(n, c, h, w)
    up = torch.gather(table, 2, idx + 1).view(n, c, h, w)
    return lo + frac * (up - lo)


def _colour(y: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """matrix (N, C, C+1) applied per pixel: Σ_j M[c, j]·y_j + M[c, C]."""
    c = y.shape[1]
    return torch.einsum("ncj,njhw->nchw", matrix[:, :, :c], y) + matrix[:, :, c].view(-1, c, 1, 1)


def apply_triggers(images: torch.Tensor, trigger_ids: torch.Tensor, flags: torch.Tensor, lut: torch.Tensor,
                   colour: torch.Tensor, weight: torch.Tensor, pattern: torch.Tensor, pattern_index: torch.Tensor,
                   additive: torch.Tensor) -> torch.Tensor:
    """images (N, C, H, W) float in [0, 1] or uint8 in [0, 255], any strides; trigger_ids, pattern_index (N,) int64;
    flags (T,) int32; lut (T, C, L); colour (T, C, C+1); weight, additive (T, C, H, W); pattern (P, C, H, W); the
    float parameters in the compute dtype and the image's scale. Returns a new tensor in the layout of `images`.

    Indices out of range (trigger_ids outside [-1, T), pattern_index of a triggered image outside [0, P)) raise
    ValueError naming the argument, without a host read: they are sent out of range on purpose (never wrapped
    around as negative indices) and torch's own index check catches them (on a GPU, a device-side assert)."""
    hi = value_range(images.dtype)
    dt = compute_dtype(images.dtype)
    t, rows = flags.shape[0], pattern.shape[0]
    k = torch.where(trigger_ids < -1, t, trigger_ids.clamp(min=0))
    prow = torch.where(trigger_ids < 0, 0, torch.where(pattern_index < 0, rows, pattern_index))
    try:
        f = flags.long()[k]
    except IndexError:
        raise ValueError(f"trigger_ids must lie in [-1, {t}) for {t} triggers") from None
    try:
        p = pattern[prow]
    except IndexError:
        raise ValueError(f"pattern_index must lie in [0, {rows}), the rows of pattern") from None
    x = images.to(dt)
    y = torch.where(_on(f, LUT), _interpolate(x, lut[k], hi), x)
    y = torch.where(_on(f, COLOUR), _colour(y, colour[k]).clamp(0, hi), y)
    w = weight[k]
    y = torch.where(_on(f, BLEND), y * (1 - w) + w * p, y)
    added = y + additive[k]
    wrapped = added - 256 * torch.floor(added / 256)
    added = torch.where(_on(f, WRAP), wrapped, torch.where(_on(f, MINMAX), added, added.clamp(0, hi)))
    y = torch.where(_on(f, ADD), added, y)
    lo, top = y.amin(dim=(1, 2, 3), keepdim=True), y.amax(dim=(1, 2, 3), keepdim=True)
    span = top - lo
    scaled = torch.where(span > 0, (y - lo) * (hi / torch.where(span > 0, span, 1)), torch.zeros_like(y))
    y = torch.where(_on(f, MINMAX), scaled, y).clamp(0, hi)
    if images.dtype == torch.uint8:
        y = torch.where(_on(f, TRUNCATE), y.floor(), (y + 0.5).floor())
    out = torch.where((trigger_ids >= 0).view(-1, 1, 1, 1), y.to(images.dtype), images)
    return torch.empty_like(images).copy_(out)
