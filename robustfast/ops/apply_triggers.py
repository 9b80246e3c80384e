"""apply_triggers: poison a batch whose images carry different triggers in one pass.

robustfast.reference.apply_triggers is the definition (stages LUT → COLOUR → BLEND → ADD → MINMAX, switched on
per trigger by `flags`). Kernels: Triton (one program per image), C++ CPU (images over threads, each through a
planar buffer), registered as robustfast::apply_triggers (see robustfast._backend). No autograd.
robustfast.backdoor builds the stacked per-trigger tensors from trigger objects.
"""
from __future__ import annotations

import math

import torch

from robustfast import _backend
from robustfast._util.checks import check_float_tensor
from robustfast.reference import apply_triggers as reference
from robustfast.reference.apply_triggers import (  # noqa: F401  (the flag bits are part of this op's API)
    ADD,
    ALL_FLAGS,
    BLEND,
    COLOUR,
    LUT,
    MINMAX,
    TRUNCATE,
    WRAP,
)

LUT_NODES = 256  # the default number of LUT nodes: one per uint8 level


def _fake(images, trigger_ids, flags, lut, colour, weight, pattern, pattern_index, additive):
    return torch.empty_like(images)


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Arguments for the registry tests: every stage alone and together, odd and prime image sizes."""
    modes = [BLEND, ADD, ADD | MINMAX, LUT, COLOUR, LUT | COLOUR, MINMAX, LUT | COLOUR | BLEND | ADD | MINMAX]
    out, t, cd = [], len(modes), reference.compute_dtype(dtype)
    for seed, (n, c, h, w) in enumerate([(7, 3, 11, 13), (5, 1, 8, 8), (6, 2, 17, 3), (3, 3, 32, 32)]):
        g = torch.Generator().manual_seed(seed)
        images = torch.rand(n, c, h, w, generator=g, dtype=torch.float64)
        ids = torch.randint(-1, t, (n,), generator=g)
        weight = torch.rand(t, c, h, w, generator=g, dtype=torch.float64)
        lut = torch.rand(t, c, 33, generator=g, dtype=torch.float64).sort(dim=-1).values
        mix = torch.eye(c, dtype=torch.float64) + 0.3 * torch.randn(t, c, c, generator=g, dtype=torch.float64)
        colour = torch.cat([mix, 0.1 * torch.randn(t, c, 1, generator=g, dtype=torch.float64)], dim=2)
        pattern = torch.rand(t, c, h, w, generator=g, dtype=torch.float64)
        additive = 0.4 * torch.randn(t, c, h, w, generator=g, dtype=torch.float64)
        out.append((images.to(device, dtype), ids.to(device), torch.tensor(modes, dtype=torch.int32, device=device),
                    *(v.to(device, cd) for v in (lut, colour, weight, pattern)), ids.clamp(min=0).to(device),
                    additive.to(device, cd)))
    return out


OP = _backend.register_op(
    "apply_triggers",
    "(Tensor images, Tensor trigger_ids, Tensor flags, Tensor lut, Tensor colour, Tensor weight, Tensor pattern, "
    "Tensor pattern_index, Tensor additive) -> Tensor",
    reference=reference.apply_triggers, fake=_fake, triton="robustfast.kernels.apply_triggers:apply_triggers_triton",
    native=("cpp",), samples=_samples, dtypes=(torch.float32, torch.float64, torch.bfloat16),
)


def _index_vector(t, n: int, name: str, device: torch.device) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32) or t.shape != (n,):
        what = f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be an int64 (or int32) tensor of shape ({n},), got {what}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but images is on {device}")
    return t.long().contiguous()


def _param(t, shape: tuple, name: str, dtype: torch.dtype, device: torch.device, fill: float = 0.0):
    """A per-trigger parameter as a contiguous tensor of `shape` in the compute dtype (filled when None); its
    values are checked by `_check_values`."""
    if t is None:
        return torch.full(shape, fill, dtype=dtype, device=device)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape {shape}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but images is on {device}")
    return t.to(dtype).contiguous()


def identity_lut(channels: int, nodes: int = LUT_NODES, hi: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    """(C, L) lookup curves that map every value to itself."""
    return torch.linspace(0, hi, nodes, dtype=dtype).expand(channels, nodes).clone()


def identity_colour(channels: int, dtype=torch.float32) -> torch.Tensor:
    """(C, C+1) affine colour map that changes nothing."""
    return torch.cat([torch.eye(channels, dtype=dtype), torch.zeros(channels, 1, dtype=dtype)], dim=1)


def _check_image_batch(images) -> tuple[torch.Tensor, bool]:
    """The images as an (N, C, H, W) view, and whether they came as uint8 N×H×W×C."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        if images.dim() != 4 or images.shape[0] == 0:
            raise ValueError(f"images of dtype uint8 must be a non-empty N×H×W×C batch, got shape "
                             f"{tuple(images.shape)}")
        return images.permute(0, 3, 1, 2), True
    check_float_tensor(images, "images")
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty N×C×H×W batch (rank 4), got shape {tuple(images.shape)}")
    if images.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"images must be float32, float64, float16, bfloat16 or uint8, got {images.dtype}")
    return images, False


def _check_values(x, nhwc: bool, ids, flags, weight, pattern_index, pattern_rows: int, given: dict) -> None:
    """Every check that reads values, in one host read: image range, flag bits, index ranges, finite parameters."""
    t = flags.shape[0]
    stats = [flags.min(), flags.max(), ids.min(), ids.max(), ((weight < 0) | (weight > 1)).any(),
             pattern_index.min(), pattern_index.max()]
    stats += [torch.isfinite(v).all() for v in given.values()]
    if not nhwc:
        stats += [((flags & WRAP) != 0).any(), *torch.aminmax(x)]  # one sweep; NaN propagates into both
    values = torch.stack([v.to(torch.float64) for v in stats]).tolist()
    f_min, f_max, id_lo, id_hi, weight_out, p_lo, p_hi = values[:7]
    finite = dict(zip(given, values[7:7 + len(given)], strict=True))
    if not nhwc:
        wrap, lo, hi = values[7 + len(given):]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("images contains NaN or inf")
        if lo < 0 or hi > 1:
            raise ValueError(f"images must lie in [0, 1] (got [{lo:.4g}, {hi:.4g}]); uint8 images are N×H×W×C")
    if f_min < 0 or f_max > ALL_FLAGS:
        raise ValueError(f"flags must be sums of the stage bits (0..{ALL_FLAGS}), got values in "
                         f"[{int(f_min)}, {int(f_max)}]")
    if not nhwc and wrap:
        raise ValueError("flags: WRAP (the legacy uint8 wrap-around) needs uint8 images")
    if id_lo < -1 or id_hi >= t:
        raise ValueError(f"trigger_ids must lie in [-1, {t}) for {t} triggers (−1 = clean), got "
                         f"[{int(id_lo)}, {int(id_hi)}]")
    for name, ok in finite.items():
        if not ok:
            raise ValueError(f"{name} contains NaN or inf")
    if weight_out:
        raise ValueError("weight (blend weight = mask × α) must lie in [0, 1]")
    if p_lo < 0 or p_hi >= pattern_rows:
        raise ValueError(f"pattern_index must lie in [0, {pattern_rows}), the rows of pattern")


def _dense(x: torch.Tensor) -> torch.Tensor:
    """x itself when each sample is one dense block (contiguous or channels_last), else a contiguous copy."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


def apply_triggers(images: torch.Tensor, trigger_ids: torch.Tensor, *, flags: torch.Tensor,
                   weight: torch.Tensor | None = None, pattern: torch.Tensor | None = None,
                   additive: torch.Tensor | None = None, lut: torch.Tensor | None = None,
                   colour: torch.Tensor | None = None, pattern_index: torch.Tensor | None = None) -> torch.Tensor:
    """Image n gets trigger trigger_ids[n] (−1: unchanged); returns a new batch of the same dtype and layout.

    images: float N×C×H×W in [0, 1], or uint8 N×H×W×C in [0, 255]. Per trigger (T of them): flags (T,) int, a
    sum of the stage bits LUT, COLOUR, BLEND, ADD, MINMAX, WRAP (uint8 only), TRUNCATE; weight, additive
    (T, C, H, W); pattern (P, C, H, W) with pattern_index (N,) choosing each image's row (default: its trigger
    id, P = T); lut (T, C, L); colour (T, C, C+1). Values are in the image's scale (×255 for uint8). Parameters
    left out are zeros (weight, pattern, additive) or identities (lut, colour).
    The value checks (ranges, finiteness) read the host once per call, batched in `_check_values`.
    """
    x, nhwc = _check_image_batch(images)
    n, c, h, w = x.shape
    ids = _index_vector(trigger_ids, n, "trigger_ids", x.device)
    if not isinstance(flags, torch.Tensor) or flags.dim() != 1 or flags.dtype.is_floating_point:
        raise ValueError("flags must be a 1-d integer tensor with one entry per trigger")
    t = flags.shape[0]
    if t == 0:
        raise ValueError("flags is empty: give at least one trigger")
    flags = flags.to(device=x.device, dtype=torch.int32).contiguous()
    hi = reference.value_range(x.dtype)
    dt = reference.compute_dtype(x.dtype)
    given = {"weight": weight, "pattern": pattern, "additive": additive, "lut": lut, "colour": colour}
    weight = _param(weight, (t, c, h, w), "weight", dt, x.device)
    rows = pattern.shape[0] if isinstance(pattern, torch.Tensor) and pattern.dim() == 4 else t
    pattern = _param(pattern, (rows, c, h, w), "pattern", dt, x.device)
    additive = _param(additive, (t, c, h, w), "additive", dt, x.device)
    nodes = lut.shape[-1] if isinstance(lut, torch.Tensor) and lut.dim() == 3 else LUT_NODES
    if nodes < 2:
        raise ValueError(f"lut must have at least 2 nodes per curve, got {nodes}")
    lut = (_param(lut, (t, c, nodes), "lut", dt, x.device) if lut is not None
           else identity_lut(c, nodes, hi, dt).to(x.device).expand(t, c, nodes).contiguous())
    colour = (_param(colour, (t, c, c + 1), "colour", dt, x.device) if colour is not None
              else identity_colour(c, dt).to(x.device).expand(t, c, c + 1).contiguous())
    if pattern_index is None:
        if pattern.shape[0] != t:
            raise ValueError(f"pattern has {pattern.shape[0]} rows but there are {t} triggers; pass pattern_index "
                             "to choose each image's row")
        pattern_index = ids.clamp(min=0)
    pattern_index = _index_vector(pattern_index, n, "pattern_index", x.device)
    _check_values(x, nhwc, ids, flags, weight, pattern_index, pattern.shape[0],
                  {k: v for k, v in given.items() if v is not None})
    args = (_dense(x), ids, flags, lut, colour, weight, pattern, pattern_index, additive)
    out = OP.call(*args)
    return out.permute(0, 2, 3, 1) if nhwc else out
