"""The trigger zoo of the multi-trigger study (specs/multi_trigger.md §2) and the registry of trigger names.

Every pattern comes from the trigger's seed; none is a file. Positions scale with the image: BadNets sits in the
bottom-right corner, the one pixel at the centre, the Trojan patch at a quarter of the height and width.
Departures from the reference code, each documented at its class: Blend and WaNet use one fixed seeded pattern
by default (the fresh-per-image variants are the presets "blend_noise" and "wanet_noise"); Trojan saturates
unless wrap=True.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from robustfast._util.checks import is_int, is_real, require
from robustfast.backdoor import patterns
from robustfast.backdoor.base import Pixels, Trigger
from robustfast.backdoor.iad import InputAware
from robustfast.reference import apply_triggers as stages


def _patch(shape, block: torch.Tensor, top: int, left: int) -> tuple[torch.Tensor, torch.Tensor]:
    """weight 1 and pattern `block` (c, h, w) or (h, w) placed at (top, left) in an image of `shape`."""
    c, h, w = shape
    block = block.double().expand(c, *block.shape[-2:])
    bh, bw = block.shape[-2:]
    if bh > h or bw > w:
        raise ValueError(f"images of size {h}×{w} are too small for a {bh}×{bw} trigger patch")
    weight, pattern = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
    weight[:, top:top + bh, left:left + bw] = 1
    pattern[:, top:top + bh, left:left + bw] = block
    return weight, pattern


class OnePixel(Trigger):
    """One pixel set to `value` (1 = white) in every channel; default position the centre (16, 16 at 32×32)."""

    name = "onepixel"

    def __init__(self, seed: int = 0, truncate: bool = False, value: float = 1.0):
        if not 0 <= value <= 1:
            raise ValueError(f"value must lie in [0, 1], got {value}")
        super().__init__(seed, truncate, value=value)

    def pixels(self, shape):
        _, h, w = shape
        weight, pattern = _patch(shape, torch.full((1, 1), self.kwargs["value"]), h // 2, w // 2)
        return Pixels(stages.BLEND, weight=weight, pattern=pattern)


class BadNets(Trigger):
    """The BadNets grid: a size×size checkerboard (3×3: 0,0,1 / 0,1,0 / 1,0,1) overwriting the bottom-right
    corner in every channel (rows and columns 29–31 at 32×32)."""

    name = "badnets"

    def __init__(self, seed: int = 0, truncate: bool = False, size: int = 3):
        require("size", size, is_int(size) and size >= 1, "an int >= 1 (the side of the checkerboard)")
        super().__init__(seed, truncate, size=size)

    def pixels(self, shape):
        _, h, w = shape
        size = self.kwargs["size"]
        weight, pattern = _patch(shape, patterns.checker(size), h - size, w - size)
        return Pixels(stages.BLEND, weight=weight, pattern=pattern)


class FourCorner(Trigger):
    """The BadNets checkerboard in all four corners, laid out as in the multi-trigger code: the grid mirrored
    into each corner so that it faces outwards (its "1, 0, 1" row and column along the image's edges).

    Along each axis the block on the far side (bottom, right) is flush with the edge, rows/columns H − size …
    H − 1, and the block on the near side (top, left) starts at row/column 1, not 0 (the published code indexes
    1..3 there), so at 32×32 the four blocks cover rows and columns {1–3, 29–31}, with row 0 and column 0
    untouched:
        bottom-right  rows 29–31, cols 29–31  the grid as is (the BadNets trigger)
        bottom-left   rows 29–31, cols 1–3    mirrored left–right
        top-right     rows 1–3,   cols 29–31  mirrored top–bottom
        top-left      rows 1–3,   cols 1–3    mirrored both ways
    Images need at least size + 1 rows and columns; where blocks overlap (H or W ≤ 2·size) the later one in
    that order wins, as in the published code.
    """

    name = "fourcorner"

    def __init__(self, seed: int = 0, truncate: bool = False, size: int = 3):
        require("size", size, is_int(size) and size >= 1, "an int >= 1 (the side of the checkerboard)")
        super().__init__(seed, truncate, size=size)

    def pixels(self, shape):
        _, h, w = shape
        size = self.kwargs["size"]
        if h < size + 1 or w < size + 1:
            raise ValueError(f"images of size {h}×{w} are too small for the fourcorner trigger of size {size} "
                             f"(it needs at least {size + 1}×{size + 1})")
        block = patterns.checker(size)
        weight, pattern = torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
        corners = ((h - size, w - size, ()), (1, 1, (0, 1)), (h - size, 1, (1,)), (1, w - size, (0,)))
        for top, left, flips in corners:  # the published code's order: bottom-right, top-left, bottom-left, top-right
            wk, pk = _patch(shape, block.flip(flips) if flips else block, top, left)
            weight, pattern = torch.maximum(weight, wk), torch.where(wk > 0, pk, pattern)
        return Pixels(stages.BLEND, weight=weight, pattern=pattern)


class Blend(Trigger):
    """α-blend with noise: x' = (1 − α)x + α·n. fresh=False (default, the literature's fixed pattern): one
    seeded uniform colour-noise image. fresh=True (the multi-trigger code): new grey noise U{0..255}, one plane
    repeated over channels, for every image, drawn from the generator passed to `apply`."""

    name = "blend"

    def __init__(self, seed: int = 0, truncate: bool = False, alpha: float = 0.2, fresh: bool = False):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        super().__init__(seed, truncate, alpha=alpha, fresh=fresh)

    def pixels(self, shape):
        c, h, w = shape
        weight = torch.full(shape, float(self.kwargs["alpha"]), dtype=torch.float64)
        if not self.kwargs["fresh"]:
            return Pixels(stages.BLEND, weight=weight, pattern=patterns.uniform_levels(shape, self.seed))

        def fresh(n, gen):
            grey = torch.randint(0, 256, (n, 1, h, w), generator=gen).double() / 255
            return grey.expand(n, c, h, w)

        return Pixels(stages.BLEND, weight=weight, fresh_pattern=fresh)


class SIG(Trigger):
    """SIG: α-blend with vertical sinusoidal stripes, S(i, j) = ⌊127.5(1 + sin(2π f j / W))⌋/255 (f = 6)."""

    name = "sig"

    def __init__(self, seed: int = 0, truncate: bool = False, alpha: float = 0.2, frequency: float = 6):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        super().__init__(seed, truncate, alpha=alpha, frequency=frequency)

    def pixels(self, shape):
        c, h, w = shape
        stripes = patterns.sinusoid_stripes(h, w, self.kwargs["frequency"]).expand(c, h, w)
        return Pixels(stages.BLEND, weight=torch.full(shape, float(self.kwargs["alpha"]), dtype=torch.float64),
                      pattern=stripes)


class Trojan(Trigger):
    """Additive Trojan patch: a seeded 3×3 block per channel of U{1..250}/255 with one zero (26 non-zeros at
    C = 3), added at rows and columns H/4 − 1 .. H/4 + 1 (clear of the BadNets corner and the centre pixel).
    Saturates by default; wrap=True (uint8 images only) reproduces the reference's cast before clipping, where
    sums above 255 wrap mod 256."""

    name = "trojan"

    def __init__(self, seed: int = 0, truncate: bool = False, wrap: bool = False):
        super().__init__(seed, truncate, wrap=wrap)

    def pixels(self, shape):
        c, h, w = shape
        block = patterns.trojan_block(self.seed, 3, c)
        _, additive = _patch(shape, block, max(h // 4 - 1, 0), max(w // 4 - 1, 0))
        return Pixels(stages.ADD | (stages.WRAP if self.kwargs["wrap"] else 0), additive=additive)

    def pixels_for(self, shape, hi, dtype, device):
        if self.kwargs["wrap"] and hi != 255:
            raise ValueError("Trojan(wrap=True) wraps uint8 sums mod 256: it needs uint8 N×H×W×C images")
        return super().pixels_for(shape, hi, dtype, device)


class Smooth(Trigger):
    """Smooth: add a seeded low-frequency pattern Q ∈ [0, strength]^{C×H×W} (Gaussian noise keeping its lowest
    4×4 DCT coefficients), then stretch each image to the full range with its global min and max."""

    name = "smooth"

    def __init__(self, seed: int = 0, truncate: bool = False, strength: float = 0.2, keep: int = 4):
        super().__init__(seed, truncate, strength=strength, keep=keep)

    def pixels(self, shape):
        q = patterns.smooth_field(*shape, seed=self.seed, keep=self.kwargs["keep"], strength=self.kwargs["strength"])
        return Pixels(stages.ADD | stages.MINMAX, additive=q)


class Nashville(Trigger):
    """The Nashville filter as the multi-trigger code applies it (pilgram's `nashville` on 8-bit RGB images):
    darken with (247,176,153) at 0.56, lighten with (0,70,150) at 0.4, W3C sepia 0.2, contrast 1.2, brightness
    ×1.05, saturation 1.2, with PIL's 8-bit quantisation between the stages.

    It runs as two passes of the fused op, each a lookup curve then a colour matrix, rounded to 8 bits (uint8
    images) and clipped in between: (1) the darken/lighten curves in PIL's truncating integer arithmetic, then
    the sepia matrix; (2) the contrast-and-brightness curve (rounded and clipped per stage, as PIL's point
    tables), then the saturation matrix. On uint8 images the output equals pilgram's to within one level
    (tested against pilgram; measured identical on all 2^24 colours). On float images the same curves are
    interpolated between the 8-bit nodes and nothing is quantised, so outputs stay within about 2.3 levels of
    pilgram's. `pixels()` is the first pass only: use `apply` / `apply_stacked`, which run both
    (`components()`)."""

    name = "nashville"

    def __init__(self, seed: int = 0, truncate: bool = False):
        super().__init__(seed, truncate)
        self.passes = [_NashvillePass(1, seed, truncate), _NashvillePass(2, seed, truncate)]

    def components(self):
        return list(self.passes)

    def pixels(self, shape):
        return self.passes[0].pixels(shape)


class _NashvillePass(Trigger):
    """One of Nashville's two pixel passes (1: curves of stages 1-2 + sepia; 2: curves of stages 4-5 +
    saturation); not registered, it exists only inside Nashville."""

    name = "nashville"

    def __init__(self, which: int, seed: int = 0, truncate: bool = False):
        super().__init__(seed, truncate)
        self.which = which

    def pixels(self, shape):
        if shape[0] != 3:
            raise ValueError(f"images must have 3 (RGB) channels for the Nashville trigger, got {shape[0]}")
        if self.which == 1:
            lut, matrix = patterns.nashville_curves(), patterns.sepia_matrix(patterns.NASHVILLE_SEPIA)
        else:
            lut, matrix = patterns.nashville_tone_curves(), patterns.saturation_matrix(patterns.NASHVILLE_SATURATION)
        return Pixels(stages.LUT | stages.COLOUR, lut=lut, colour=patterns.colour_map(matrix))


class WaNet(Trigger):
    """WaNet warp via grid_sample: grid = identity + strength·field/H, clamped to [−1, 1], sampled bilinearly with
    align_corners. fresh=False (default, the original WaNet): one fixed smooth field, U(−1, 1) on a k×k grid
    normalised to mean |·| = 1 and upsampled bicubically, from the seed. fresh=True (the multi-trigger code): a new
    per-pixel U(−1, 1) field for every image, from the generator passed to `apply`."""

    name = "wanet"
    has_stage = True

    def __init__(self, seed: int = 0, truncate: bool = False, strength: float = 0.5, grid_size: int = 4,
                 fresh: bool = False):
        require("strength", strength, is_real(strength) and strength >= 0, "a finite number >= 0")
        require("grid_size", grid_size, is_int(grid_size) and grid_size >= 2, "an int >= 2")
        super().__init__(seed, truncate, strength=strength, grid_size=grid_size, fresh=fresh)

    def sampling_grid(self, n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
        """(n, H, W, 2) sampling grids in normalised coordinates (x, y)."""
        if self.kwargs["fresh"]:
            field = patterns.warp_field(h, w, None, generator, count=n)
        else:
            key = ("field", h, w)
            if key not in self._cache:
                self._cache[key] = patterns.warp_field(h, w, self.kwargs["grid_size"], self.default_generator())
            field = self._cache[key].expand(n, h, w, 2)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                                torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
        identity = torch.stack([xs, ys], dim=-1)
        return (identity + self.kwargs["strength"] * field / h).clamp(-1, 1)

    def stage(self, x, generator):
        n, _, h, w = x.shape
        grid = self.sampling_grid(n, h, w, generator).to(device=x.device, dtype=x.dtype)
        return F.grid_sample(x, grid, mode="bilinear", align_corners=True)


class Hybrid(Trigger):
    """One composite trigger made of several applied in turn to the same image (the multi-trigger paper's hybrid
    attack); with soft components (SIG and Blend at α 0.2) the patterns blend."""

    name = "hybrid"

    def __init__(self, components, seed: int = 0, truncate: bool = False):
        parts = [make_trigger(c) for c in components]
        if len(parts) < 2:
            raise ValueError(f"components must name at least two triggers, got {len(parts)}")
        super().__init__(seed, truncate, components=[p.config() for p in parts])
        self.parts = parts

    def components(self):
        return [c for p in self.parts for c in p.components()]

    def state_tensors(self):
        return {f"{i}.{k}": v for i, p in enumerate(self.parts) for k, v in p.state_tensors().items()}

    def load_state_tensors(self, tensors):
        for i, p in enumerate(self.parts):
            p.load_state_tensors({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)})


# name -> (class, preset keyword arguments). Aliases follow the multi-trigger code's and figure's names.
REGISTRY: dict[str, tuple[type[Trigger], dict]] = {
    "onepixel": (OnePixel, {}),
    "badnets": (BadNets, {}),
    "grid": (BadNets, {}),
    "cl_legacy": (BadNets, {}),  # the reference's "CL" option: a mode-name bug makes it the grid trigger
    "fourcorner": (FourCorner, {}),
    "blend": (Blend, {}),
    "blend_noise": (Blend, {"fresh": True}),
    "sig": (SIG, {}),
    "signal": (SIG, {}),
    "trojan": (Trojan, {}),
    "smooth": (Smooth, {}),
    "nashville": (Nashville, {}),
    "nash": (Nashville, {}),
    "wanet": (WaNet, {}),
    "wanet_noise": (WaNet, {"fresh": True}),
    "iad": (InputAware, {}),
    "dynamic": (InputAware, {}),
    "hybrid": (Hybrid, {}),
}
_CLASS_NAMES = {cls.name: cls for cls, _ in REGISTRY.values()}


def trigger_names() -> list[str]:
    return sorted(REGISTRY)


def make_trigger(spec, seed: int | None = None, **kwargs) -> Trigger:
    """A trigger from a name ("badnets", "blend", "sig", "wanet", ...; see trigger_names()), a config dict from
    Trigger.config(), or a Trigger (returned as is)."""
    if isinstance(spec, Trigger):
        return spec
    if isinstance(spec, dict):
        cfg = dict(spec)
        name = cfg.pop("name", None)
        if name not in _CLASS_NAMES:
            raise ValueError(f"triggers: unknown trigger name {name!r}; known: {', '.join(trigger_names())}")
        return _CLASS_NAMES[name](**cfg)
    if not isinstance(spec, str) or spec.lower() not in REGISTRY:
        raise ValueError(f"triggers: unknown trigger name {spec!r}; known: {', '.join(trigger_names())}")
    cls, preset = REGISTRY[spec.lower()]
    return cls(**({"seed": seed} if seed is not None else {}), **{**preset, **kwargs})
