"""Triton kernel of apply_triggers (see robustfast/reference/apply_triggers.py for the definition).

One program per image. It reads the image's trigger id once: a clean image is copied; otherwise the program
walks the image in tiles of BLOCK_P pixels × all channels (the colour stage mixes channels of one pixel), runs
the trigger's stages on the tile in opmath precision, and stores. A MINMAX trigger takes one extra sweep for the
image's min and max and recomputes the tile on the write sweep instead of keeping the image anywhere.
Launch through `apply_triggers_triton`, which uses `wrap_triton` so torch.compile can trace the launch.
"""
import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from robustfast.kernels.common import clamp

from robustfast.reference.apply_triggers import value_range

BLOCK_PIXELS = 256

# The stage bits of robustfast.reference.apply_triggers.
_LUT: tl.constexpr = 1
_COLOUR: tl.constexpr = 2
_BLEND: tl.constexpr = 4
_ADD: tl.constexpr = 8
_MINMAX: tl.constexpr = 16
_WRAP: tl.constexpr = 32
_TRUNCATE: tl.constexpr = 64


@triton.jit
def _stages(x_ptr, lut_ptr, colour_ptr, weight_ptr, pattern_ptr, add_ptr, img_base, tid, prow, flags, p, chans,
            mask, C, HW, L, stride_c, stride_p, hi, lut_scale):
    """The tile (pixels p × channels) of one image after every stage but MINMAX, in the parameters' dtype."""
    w_off = tid.to(tl.int64) * C * HW + chans[None, :] * HW + p[:, None]
    w = tl.load(weight_ptr + w_off, mask=mask, other=0.0)
    y = tl.load(x_ptr + img_base + chans[None, :] * stride_c + p[:, None] * stride_p, mask=mask, other=0).to(w.dtype)
    if (flags & _LUT) != 0:
        pos = y * lut_scale
        i0 = clamp(tl.floor(pos), 0.0, L - 2.0)
        frac = pos - i0
        l_off = tid.to(tl.int64) * C * L + chans[None, :] * L + i0.to(tl.int64)
        lo = tl.load(lut_ptr + l_off, mask=mask, other=0.0)
        up = tl.load(lut_ptr + l_off + 1, mask=mask, other=0.0)
        y = lo + frac * (up - lo)
    if (flags & _COLOUR) != 0:
        c_base = tid.to(tl.int64) * C * (C + 1)
        acc = tl.zeros_like(y)
        for j in range(0, C):
            col = tl.sum(tl.where(chans[None, :] == j, y, 0.0), axis=1)
            m = tl.load(colour_ptr + c_base + chans * (C + 1) + j, mask=chans < C, other=0.0)
            acc += col[:, None] * m[None, :]
        bias = tl.load(colour_ptr + c_base + chans * (C + 1) + C, mask=chans < C, other=0.0)
        y = clamp(acc + bias[None, :], 0.0, hi)
    if (flags & _BLEND) != 0:
        pat = tl.load(pattern_ptr + prow.to(tl.int64) * C * HW + chans[None, :] * HW + p[:, None], mask=mask,
                      other=0.0)
        y = y * (1.0 - w) + w * pat
    if (flags & _ADD) != 0:
        y = y + tl.load(add_ptr + w_off, mask=mask, other=0.0)
        if (flags & _WRAP) != 0:
            y = y - 256.0 * tl.floor(y / 256.0)
        elif (flags & _MINMAX) == 0:
            y = clamp(y, 0.0, hi)
    return y


@triton.jit
def _apply_triggers_kernel(x_ptr, out_ptr, ids_ptr, flags_ptr, lut_ptr, colour_ptr, weight_ptr, pattern_ptr,
                           pidx_ptr, add_ptr, C, HW, L, stride_c, stride_p, hi, lut_scale,
                           IS_UINT8: tl.constexpr, C_BLOCK: tl.constexpr, BLOCK_P: tl.constexpr):
    n = tl.program_id(0)
    img_base = n.to(tl.int64) * C * HW
    tid = tl.load(ids_ptr + n)
    chans = tl.arange(0, C_BLOCK)
    pix = tl.arange(0, BLOCK_P)
    if tid < 0:
        for start in range(0, HW, BLOCK_P):
            p = start + pix
            mask = (p < HW)[:, None] & (chans < C)[None, :]
            off = img_base + chans[None, :] * stride_c + p[:, None] * stride_p
            tl.store(out_ptr + off, tl.load(x_ptr + off, mask=mask), mask=mask)
    else:
        flags = tl.load(flags_ptr + tid)
        prow = tl.load(pidx_ptr + n)
        minmax = (flags & _MINMAX) != 0
        first = tl.load(weight_ptr)  # any parameter: its dtype is the compute dtype
        lo = first * 0.0
        span = first * 0.0 + 1.0
        if minmax:
            mn = first * 0.0 + float("inf")
            mx = first * 0.0 - float("inf")
            for start in range(0, HW, BLOCK_P):
                p = start + pix
                mask = (p < HW)[:, None] & (chans < C)[None, :]
                y = _stages(x_ptr, lut_ptr, colour_ptr, weight_ptr, pattern_ptr, add_ptr, img_base, tid, prow,
                            flags, p, chans, mask, C, HW, L, stride_c, stride_p, hi, lut_scale)
                mn = tl.minimum(mn, tl.min(tl.min(tl.where(mask, y, float("inf")), axis=1), axis=0))
                mx = tl.maximum(mx, tl.max(tl.max(tl.where(mask, y, -float("inf")), axis=1), axis=0))
            lo = mn
            span = mx - mn
        for start in range(0, HW, BLOCK_P):
            p = start + pix
            mask = (p < HW)[:, None] & (chans < C)[None, :]
            y = _stages(x_ptr, lut_ptr, colour_ptr, weight_ptr, pattern_ptr, add_ptr, img_base, tid, prow, flags,
                        p, chans, mask, C, HW, L, stride_c, stride_p, hi, lut_scale)
            if minmax:
                y = tl.where(span > 0, (y - lo) * (hi / tl.where(span > 0, span, 1.0)), 0.0)
            y = clamp(y, 0.0, hi)
            off = img_base + chans[None, :] * stride_c + p[:, None] * stride_p
            if IS_UINT8:
                y = tl.floor(y + tl.where((flags & _TRUNCATE) != 0, 0.0, 0.5))
            tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=mask)


def _check_launch(images, trigger_ids, flags, lut, colour, weight, pattern, pattern_index, additive) -> None:
    """What the kernel indexes with, checked at launch (a ValueError naming the argument): shapes, dtypes, devices
    and contiguity from metadata (no host read); the index ranges (trigger_ids in [-1, T), pattern_index in [0, P)
    for triggered images, flags in [0, 127]) only for CPU tensors (the interpreter), where reading them costs no
    device synchronisation. On a GPU the ranges are the caller's: the public robustfast.ops.apply_triggers checks
    them in its one batched host read, and this kernel op (robustfast::_apply_triggers_triton) is private."""
    if images.dim() != 4:
        raise ValueError(f"apply_triggers: images must be N×C×H×W, got shape {tuple(images.shape)}")
    if images.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8):
        raise ValueError(f"apply_triggers: images must be float32, float64, float16, bfloat16 or uint8, got "
                         f"{images.dtype}")
    if not (images.is_contiguous() or images.is_contiguous(memory_format=torch.channels_last)):
        raise ValueError("apply_triggers: images must be contiguous or channels_last")
    n, c, h, w = images.shape
    if flags.dim() != 1 or flags.shape[0] < 1:
        raise ValueError(f"apply_triggers: flags must be (T,) with T >= 1, got shape {tuple(flags.shape)}")
    if lut.dim() != 3 or lut.shape[2] < 2:
        raise ValueError(f"apply_triggers: lut must be (T, C, L) with L >= 2, got shape {tuple(lut.shape)}")
    if pattern.dim() != 4 or pattern.shape[0] < 1:
        raise ValueError(f"apply_triggers: pattern must be (P, C, H, W), got shape {tuple(pattern.shape)}")
    t = flags.shape[0]
    op_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    want = {"trigger_ids": (trigger_ids, torch.int64, (n,)), "pattern_index": (pattern_index, torch.int64, (n,)),
            "flags": (flags, torch.int32, (t,)), "lut": (lut, op_dtype, (t, c, lut.shape[2])),
            "colour": (colour, op_dtype, (t, c, c + 1)), "weight": (weight, op_dtype, (t, c, h, w)),
            "additive": (additive, op_dtype, (t, c, h, w)), "pattern": (pattern, op_dtype, (pattern.shape[0], c, h, w))}
    for name, (v, dtype, shape) in want.items():
        if v.device != images.device:
            raise ValueError(f"apply_triggers: {name} must be on the images' device ({images.device}), got {v.device}")
        if v.dtype != dtype:
            raise ValueError(f"apply_triggers: {name} must be {dtype}, got {v.dtype}")
        if tuple(v.shape) != tuple(shape):
            raise ValueError(f"apply_triggers: {name} must have shape {tuple(shape)}, got {tuple(v.shape)}")
        if not v.is_contiguous():
            raise ValueError(f"apply_triggers: {name} must be contiguous")
    if images.device.type != "cpu" or n == 0 or torch.compiler.is_compiling():
        return
    ids, rows = trigger_ids.tolist(), pattern_index.tolist()
    for i, f in enumerate(flags.tolist()):
        if not 0 <= f <= 127:
            raise ValueError(f"apply_triggers: flags must be sums of the stage bits (0..127), got flags[{i}] = {f}")
    for i, (k, r) in enumerate(zip(ids, rows, strict=True)):
        if not -1 <= k < t:
            raise ValueError(f"apply_triggers: trigger_ids must lie in [-1, {t}) for {t} triggers, got "
                             f"trigger_ids[{i}] = {k}")
        if k >= 0 and not 0 <= r < pattern.shape[0]:
            raise ValueError(f"apply_triggers: pattern_index must lie in [0, {pattern.shape[0]}), the rows of "
                             f"pattern, got pattern_index[{i}] = {r}")


def apply_triggers_triton(images, trigger_ids, flags, lut, colour, weight, pattern, pattern_index,
                          additive) -> torch.Tensor:
    """Launch on inputs validated by robustfast.ops.apply_triggers: images N×C×H×W, each sample one dense block
    (contiguous or channels_last); parameters contiguous in the compute dtype. The output takes the images'
    layout. `_check_launch` checks what the kernel indexes with (index ranges on CPU tensors only; see there)."""
    _check_launch(images, trigger_ids, flags, lut, colour, weight, pattern, pattern_index, additive)
    out = torch.empty_like(images)
    n, c, h, w = images.shape
    hw = h * w
    if n == 0 or c * hw == 0:
        return out.copy_(images)
    nodes = lut.shape[-1]
    hi = value_range(images.dtype)
    block_p = min(BLOCK_PIXELS, triton.next_power_of_2(hw))
    wrap_triton(_apply_triggers_kernel)[(n,)](
        images, out, trigger_ids, flags, lut, colour, weight, pattern, pattern_index, additive, c, hw, nodes,
        images.stride(1), images.stride(3), hi, (nodes - 1) / hi,
        IS_UINT8=images.dtype == torch.uint8, C_BLOCK=triton.next_power_of_2(c), BLOCK_P=block_p)
    return out
