"""Apply many triggers to one batch: image n gets triggers[trigger_ids[n]] (−1: clean).

Per round (a hybrid trigger takes one round per component, every other trigger one): the torch-stage triggers
(WaNet, IAD) run batched on their own rows, then every pixel trigger runs in one call of the fused op
robustfast.ops.apply_triggers, parameterised by the triggers' stacked tensors.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from robustfast._util.checks import check_images
from robustfast.ops.apply_triggers import LUT_NODES, apply_triggers, identity_colour, identity_lut
from robustfast.reference.apply_triggers import compute_dtype, value_range

if TYPE_CHECKING:  # stack works on any object with the Trigger interface; base imports stack at run time
    from robustfast.backdoor.base import Trigger


def _as_nchw_float(rows: torch.Tensor, uint8: bool) -> torch.Tensor:
    """Rows of the batch as float N×C×H×W in [0, 1] for a torch stage."""
    return rows.permute(0, 3, 1, 2).float() / 255 if uint8 else rows


def _back(x: torch.Tensor, like: torch.Tensor, uint8: bool, truncate: bool) -> torch.Tensor:
    """A stage's float output in the batch's representation (uint8 rounded, or truncated for legacy triggers)."""
    x = x.clamp(0, 1)
    if not uint8:
        return x.to(like.dtype)
    scaled = x * 255
    levels = scaled.floor() if truncate else (scaled + 0.5).floor()
    return levels.to(torch.uint8).permute(0, 2, 3, 1)


def _run_stages(out: torch.Tensor, ids: torch.Tensor, triggers: list[Trigger | None], uint8: bool,
                generator: torch.Generator) -> torch.Tensor:
    for k, trig in enumerate(triggers):
        if trig is None or not trig.has_stage:
            continue
        rows = (ids == k).nonzero().flatten()
        if len(rows):
            out[rows] = _back(trig.stage(_as_nchw_float(out[rows], uint8), generator), out, uint8, trig.truncate)
    return out


def pixel_table(triggers: list[Trigger | None], shape: tuple[int, int, int], hi: float, dtype: torch.dtype,
                device: torch.device) -> dict:
    """The stacked per-trigger tensors of robustfast.ops.apply_triggers for pixel triggers (None entries and
    torch-stage triggers get flags 0): flags, weight, pattern, additive, lut, colour; plus "fresh", the
    (trigger index, Pixels) pairs whose blend pattern is drawn per image."""
    tables = [None if t is None or t.has_stage else t.pixels_for(shape, hi, dtype, device) for t in triggers]
    zeros = torch.zeros(shape, dtype=dtype, device=device)

    def stacked(field):
        return torch.stack([zeros if t is None or getattr(t, field) is None else getattr(t, field) for t in tables])

    return {
        "flags": torch.tensor([0 if t is None else t.flags for t in tables], dtype=torch.int32, device=device),
        "weight": stacked("weight"), "pattern": stacked("pattern"), "additive": stacked("additive"),
        "lut": torch.stack([identity_lut(shape[0], LUT_NODES, hi, dtype).to(device) if t is None or t.lut is None
                            else t.lut for t in tables]),
        "colour": torch.stack([identity_colour(shape[0], dtype).to(device) if t is None or t.colour is None
                               else t.colour for t in tables]),
        "fresh": [(k, t) for k, t in enumerate(tables) if t is not None and t.fresh_pattern is not None],
    }


def _run_pixels(out: torch.Tensor, ids: torch.Tensor, triggers: list[Trigger | None], uint8: bool,
                generator: torch.Generator) -> torch.Tensor:
    shape = tuple(out.permute(0, 3, 1, 2).shape[1:]) if uint8 else tuple(out.shape[1:])
    hi, dt, dev = value_range(out.dtype), compute_dtype(out.dtype), out.device
    pixel_ids = ids.clone()
    for k, trig in enumerate(triggers):
        if trig is None or trig.has_stage:
            pixel_ids[ids == k] = -1
    if (pixel_ids < 0).all():
        return out
    table = pixel_table(triggers, shape, hi, dt, dev)
    fresh = table.pop("fresh")
    pattern_index = pixel_ids.clamp(min=0)
    if fresh:
        banks = [table["pattern"]]
        for k, t in fresh:
            rows = (pixel_ids == k).nonzero().flatten()
            if len(rows):
                pattern_index[rows] = sum(len(b) for b in banks) + torch.arange(len(rows), device=dev)
                banks.append((t.fresh_pattern(len(rows), generator).double() * hi).to(dtype=dt, device=dev))
        table["pattern"] = torch.cat(banks)
    return apply_triggers(out, pixel_ids, pattern_index=pattern_index, **table)


def _check_stage_images(images: torch.Tensor) -> None:
    """What the fused op requires of images, for the torch-stage triggers (WaNet, IAD) that do not run through
    it: uint8 N×H×W×C, or float N×C×H×W, finite, in [0, 1]. One read of the values per call."""
    if images.dtype == torch.uint8:
        if images.dim() != 4 or images.shape[0] == 0:
            raise ValueError(f"images of dtype uint8 must be a non-empty N×H×W×C batch, got shape "
                             f"{tuple(images.shape)}")
        return
    check_images(images, "images")


def apply_stacked(images: torch.Tensor, trigger_ids: torch.Tensor, triggers: list[Trigger],
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Image n poisoned with triggers[trigger_ids[n]] (−1 = unchanged), in one fused pass per round.

    images: float N×C×H×W in [0, 1] or uint8 N×H×W×C. Fresh per-image randomness comes from `generator`
    (default: one seeded with the first trigger's seed). Returns a new tensor."""
    if not triggers:
        raise ValueError("triggers is empty: give at least one trigger")
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        layout = "N×H×W×C" if images.dtype == torch.uint8 else "N×C×H×W"
        raise ValueError(f"images must be an {layout} batch (rank 4), got shape {tuple(images.shape)}")
    uint8 = images.dtype == torch.uint8
    if generator is None:
        generator = triggers[0].default_generator()
    if not isinstance(trigger_ids, torch.Tensor) or trigger_ids.shape != images.shape[:1]:
        raise ValueError(f"trigger_ids must be a tensor of shape ({images.shape[0]},), one id per image")
    ids = trigger_ids.to(device=images.device, dtype=torch.long)
    if len(ids) and (ids.min().item() < -1 or ids.max().item() >= len(triggers)):
        raise ValueError(f"trigger_ids must lie in [-1, {len(triggers)}) for {len(triggers)} triggers")
    if len(images) and any(c.has_stage for t in triggers for c in t.components()):
        _check_stage_images(images)  # the fused op checks what pixel triggers get; torch stages bypass it
    out = images
    for r in range(max(len(t.components()) for t in triggers)):
        comps = [t.components()[r] if r < len(t.components()) else None for t in triggers]
        round_ids = ids.clone()
        for k, c in enumerate(comps):
            if c is None:
                round_ids[ids == k] = -1
        if any(c is not None and c.has_stage for c in comps):
            out = _run_stages(out.clone(), round_ids, comps, uint8, generator)
        out = _run_pixels(out, round_ids, comps, uint8, generator)
    return out if out is not images else images.clone()
