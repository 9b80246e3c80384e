"""The trigger interface: what a trigger is to the fused op (a pixel pipeline) or beside it (a torch stage).

A trigger is a small object with a seed. Pixel triggers describe themselves as a `Pixels` record: the stage
bits and per-pixel tensors of robustfast.ops.apply_triggers, in the image's scale. Geometric and learned triggers
(WaNet, IAD) implement `stage`, a batched torch function on float images. Either way `apply(images)` poisons a
whole batch: float N×C×H×W in [0, 1], or uint8 N×H×W×C (rounded, or truncated like the reference code's
`astype(uint8)` when the trigger was built with `truncate=True`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from robustfast.backdoor.stack import apply_stacked
from robustfast.reference.apply_triggers import TRUNCATE


@dataclasses.dataclass
class Pixels:
    """One trigger's pixel pipeline for images of one shape (C, H, W), values in [0, 1]; `scaled` converts.

    flags: stage bits of robustfast.ops.apply_triggers (TRUNCATE is added by the trigger). weight, pattern,
    additive: (C, H, W) or None (zeros). lut (C, L) and colour (C, C+1) or None (identities). fresh_pattern:
    draws (n, C, H, W) blend patterns, one per image, from a torch.Generator (the pattern field is then unused).
    """

    flags: int
    weight: torch.Tensor | None = None
    pattern: torch.Tensor | None = None
    additive: torch.Tensor | None = None
    lut: torch.Tensor | None = None
    colour: torch.Tensor | None = None
    fresh_pattern: Callable[[int, torch.Generator], torch.Tensor] | None = None

    def scaled(self, hi: float, dtype: torch.dtype, device: torch.device) -> Pixels:
        """The same pipeline for values in [0, hi] (hi = 255 for uint8 images), as `dtype` on `device`."""
        def cast(t, scale):
            return None if t is None else (t.double() * scale).to(dtype=dtype, device=device)

        colour = None
        if self.colour is not None:  # the linear part is scale-free, the bias scales
            colour = self.colour.double().clone()
            colour[:, -1] *= hi
            colour = colour.to(dtype=dtype, device=device)
        return dataclasses.replace(self, weight=cast(self.weight, 1.0), pattern=cast(self.pattern, hi),
                                   additive=cast(self.additive, hi), lut=cast(self.lut, hi), colour=colour)


IDENTITY = Pixels(flags=0)


class Trigger:
    """Base class. Subclasses set `name`, keep their constructor arguments in `self.kwargs` (JSON-able), and
    implement `pixels(shape)` (pixel triggers) or `stage(x, generator)` (torch-stage triggers)."""

    name = "trigger"
    has_stage = False  # True when the trigger runs as a torch stage instead of (or before) a pixel pipeline

    def __init__(self, seed: int = 0, truncate: bool = False, **kwargs):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = seed
        self.truncate = bool(truncate)
        self.kwargs = kwargs
        self._cache: dict = {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}(seed={self.seed}{', ' if args else ''}{args})"

    def config(self) -> dict:
        """A JSON-able description; robustfast.backdoor.make_trigger(config) rebuilds the trigger."""
        return {"name": self.name, "seed": self.seed, "truncate": self.truncate, **self.kwargs}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Learned tensors to save beside the config (the IAD networks); none for pattern triggers."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise ValueError(f"{self.name} has no learned state, got tensors {sorted(tensors)}")

    def components(self) -> list[Trigger]:
        """The triggers applied in turn (a hybrid has several)."""
        return [self]

    def pixels(self, shape: tuple[int, int, int]) -> Pixels:
        """The pixel pipeline for images of shape (C, H, W), in [0, 1] scale; identity for stage triggers."""
        return IDENTITY

    def stage(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Torch stage on float N×C×H×W images in [0, 1]; identity for pixel triggers."""
        return x

    def pixels_for(self, shape, hi: float, dtype: torch.dtype, device: torch.device) -> Pixels:
        """`pixels(shape)` scaled to [0, hi] and moved, cached per (shape, hi, dtype, device)."""
        key = (tuple(shape), hi, dtype, device)
        if key not in self._cache:
            px = self.pixels(tuple(shape))
            if self.truncate:
                px = dataclasses.replace(px, flags=px.flags | TRUNCATE)
            self._cache[key] = px.scaled(hi, dtype, device)
        return self._cache[key]

    def default_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def apply(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """This trigger on every image of the batch (float N×C×H×W in [0, 1], or uint8 N×H×W×C); a new tensor.

        Fresh per-image randomness (blend noise, WaNet fields) comes from `generator`, by default one seeded
        with the trigger's seed, so a call is reproducible."""
        n = images.shape[0] if isinstance(images, torch.Tensor) and images.dim() > 0 else 0
        ids = torch.zeros(n, dtype=torch.long, device=images.device if n else None)
        return apply_stacked(images, ids, [self], generator)
