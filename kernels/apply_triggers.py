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


def apply_triggers_triton(images, trigger_ids, flags, lut, colour, weight, pattern, pattern_index,
                          additive) -> torch.Tensor:
    """Launch on validated inputs (robustfast.ops.apply_triggers ensures them): images N×C×H×W, each sample one
    dense block (contiguous or channels_last); parameters contiguous in the compute dtype. The output takes the
    images' layout."""
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
