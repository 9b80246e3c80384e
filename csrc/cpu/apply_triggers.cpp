// CPU kernel of robustfast::apply_triggers: each image of a batch gets its own trigger, in one pass.
//
// Images are spread over threads with at::parallel_for. A triggered image is read once into a per-thread planar
// buffer (C × HW values in the opmath type: float, double for double images), the trigger's stages run over the
// buffer (robustfast.reference.apply_triggers is the definition):
//   LUT     per channel, linear between nodes (a gather);
//   COLOUR  per pixel, a C×(C+1) affine map, clamped;
//   BLEND, ADD (saturate or wrap), MINMAX and the final clamp: flat loops over C·HW contiguous values, which the
//           compiler vectorises;
// and the buffer is written back in the image's layout (NCHW or channels_last) and dtype, with uint8 rounding
// (⌊y + ½⌋, or ⌊y⌋ for TRUNCATE). Clean images (id −1) are copied element by element.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../apply_triggers_checks.h"

namespace {

using namespace robustfast;

// Everything one image's trigger reads: pointers already offset to trigger k (and to the image's pattern row).
template <typename opmath_t>
struct TriggerView {
  int32_t flags;
  const opmath_t* lut;     // C × L
  const opmath_t* colour;  // C × (C+1)
  const opmath_t* weight;  // C × HW
  const opmath_t* pattern;
  const opmath_t* additive;
};

template <typename opmath_t>
void lut_stage(opmath_t* buf, const opmath_t* lut, int64_t c, int64_t hw, int64_t nodes, opmath_t scale) {
  const opmath_t top = static_cast<opmath_t>(nodes - 2);
  for (int64_t ch = 0; ch < c; ++ch) {
    const opmath_t* curve = lut + ch * nodes;
    opmath_t* row = buf + ch * hw;
    for (int64_t i = 0; i < hw; ++i) {
      const opmath_t pos = row[i] * scale;
      const opmath_t i0 = clamp_keep_nan(std::floor(pos), opmath_t(0), top);
      const opmath_t frac = pos - i0;
      const int64_t idx = std::isnan(i0) ? 0 : static_cast<int64_t>(i0);  // NaN stays NaN through frac
      const opmath_t lo = curve[idx];
      row[i] = lo + frac * (curve[idx + 1] - lo);
    }
  }
}

template <typename opmath_t>
void colour_stage(opmath_t* buf, const opmath_t* m, int64_t c, int64_t hw, opmath_t hi, opmath_t* pixel) {
  for (int64_t i = 0; i < hw; ++i) {
    for (int64_t j = 0; j < c; ++j) pixel[j] = buf[j * hw + i];
    for (int64_t ch = 0; ch < c; ++ch) {
      const opmath_t* row = m + ch * (c + 1);
      opmath_t acc = 0;
      for (int64_t j = 0; j < c; ++j) acc += pixel[j] * row[j];
      buf[ch * hw + i] = clamp_keep_nan(acc + row[c], opmath_t(0), hi);
    }
  }
}

// The flat stages over the C·HW buffer: blend, add, min-max, final clamp.
template <typename opmath_t>
void flat_stages(opmath_t* __restrict buf, const TriggerView<opmath_t>& t, int64_t len, opmath_t hi) {
  if (t.flags & kBlend) {
    const opmath_t* __restrict w = t.weight;
    const opmath_t* __restrict p = t.pattern;
    for (int64_t i = 0; i < len; ++i) buf[i] = buf[i] * (opmath_t(1) - w[i]) + w[i] * p[i];
  }
  if (t.flags & kAdd) {
    const opmath_t* __restrict a = t.additive;
    for (int64_t i = 0; i < len; ++i) buf[i] = buf[i] + a[i];
    if (t.flags & kWrap) {
      for (int64_t i = 0; i < len; ++i) buf[i] = buf[i] - opmath_t(256) * std::floor(buf[i] / opmath_t(256));
    } else if (!(t.flags & kMinMax)) {
      for (int64_t i = 0; i < len; ++i) buf[i] = clamp_keep_nan(buf[i], opmath_t(0), hi);
    }
  }
  if (t.flags & kMinMax) {
    opmath_t lo = std::numeric_limits<opmath_t>::infinity(), top = -lo;
    for (int64_t i = 0; i < len; ++i) {
      lo = std::min(lo, buf[i]);
      top = std::max(top, buf[i]);
    }
    const opmath_t span = top - lo;
    if (span > opmath_t(0)) {
      const opmath_t scale = hi / span;
      for (int64_t i = 0; i < len; ++i) buf[i] = (buf[i] - lo) * scale;
    } else {
      std::fill(buf, buf + len, opmath_t(0));
    }
  }
  for (int64_t i = 0; i < len; ++i) buf[i] = clamp_keep_nan(buf[i], opmath_t(0), hi);
}

template <typename scalar_t, typename opmath_t>
void store(const opmath_t* buf, scalar_t* out, int64_t c, int64_t hw, int64_t sc, int64_t sp, bool truncate) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const opmath_t* row = buf + ch * hw;
    scalar_t* dst = out + ch * sc;
    if constexpr (std::is_same_v<scalar_t, uint8_t>) {
      const opmath_t half = truncate ? opmath_t(0) : opmath_t(0.5);
      for (int64_t i = 0; i < hw; ++i) dst[i * sp] = static_cast<uint8_t>(std::floor(row[i] + half));
    } else {
      for (int64_t i = 0; i < hw; ++i) dst[i * sp] = static_cast<scalar_t>(row[i]);
    }
  }
}

template <typename scalar_t>
void apply_triggers_impl(const at::Tensor& images, const at::Tensor& ids_t, const at::Tensor& flags_t,
                         const at::Tensor& lut_t, const at::Tensor& colour_t, const at::Tensor& weight_t,
                         const at::Tensor& pattern_t, const at::Tensor& pidx_t, const at::Tensor& add_t,
                         at::Tensor& out) {
  using opmath_t = std::conditional_t<std::is_same_v<scalar_t, uint8_t>, float, at::opmath_type<scalar_t>>;
  const int64_t n = images.size(0), c = images.size(1), hw = images.size(2) * images.size(3);
  const int64_t sc = images.stride(1), sp = images.stride(3), chw = c * hw, nodes = lut_t.size(2);
  const opmath_t hi = std::is_same_v<scalar_t, uint8_t> ? opmath_t(255) : opmath_t(1);
  const opmath_t lut_scale = static_cast<opmath_t>(static_cast<double>(nodes - 1) / static_cast<double>(hi));
  const scalar_t* x = images.const_data_ptr<scalar_t>();
  scalar_t* y = out.mutable_data_ptr<scalar_t>();
  const int64_t* ids = ids_t.const_data_ptr<int64_t>();
  const int64_t* pidx = pidx_t.const_data_ptr<int64_t>();
  const int32_t* flags = flags_t.const_data_ptr<int32_t>();
  const opmath_t *lut = lut_t.const_data_ptr<opmath_t>(), *colour = colour_t.const_data_ptr<opmath_t>();
  const opmath_t *weight = weight_t.const_data_ptr<opmath_t>(), *pattern = pattern_t.const_data_ptr<opmath_t>();
  const opmath_t* additive = add_t.const_data_ptr<opmath_t>();
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, chw));
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    std::vector<opmath_t> buffer(chw), pixel(c);
    for (int64_t img = begin; img < end; ++img) {
      const scalar_t* src = x + img * chw;
      scalar_t* dst = y + img * chw;
      const int64_t k = ids[img];
      if (k < 0) {
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t i = 0; i < hw; ++i) dst[ch * sc + i * sp] = src[ch * sc + i * sp];
        continue;
      }
      const TriggerView<opmath_t> t{flags[k],          lut + k * c * nodes,  colour + k * c * (c + 1),
                                    weight + k * chw,  pattern + pidx[img] * chw, additive + k * chw};
      opmath_t* buf = buffer.data();
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < hw; ++i) buf[ch * hw + i] = static_cast<opmath_t>(src[ch * sc + i * sp]);
      if (t.flags & kLut) lut_stage(buf, t.lut, c, hw, nodes, lut_scale);
      if (t.flags & kColour) colour_stage(buf, t.colour, c, hw, hi, pixel.data());
      flat_stages(buf, t, chw, hi);
      store(buf, dst, c, hw, sc, sp, (t.flags & kTruncate) != 0);
    }
  });
}

at::Tensor apply_triggers_cpu(const at::Tensor& images, const at::Tensor& trigger_ids, const at::Tensor& flags,
                              const at::Tensor& lut, const at::Tensor& colour, const at::Tensor& weight,
                              const at::Tensor& pattern, const at::Tensor& pattern_index, const at::Tensor& additive) {
  check_apply_triggers_args(images, trigger_ids, flags, lut, colour, weight, pattern, pattern_index, additive,
                            c10::DeviceType::CPU);
  check_apply_triggers_indices(trigger_ids.const_data_ptr<int64_t>(), pattern_index.const_data_ptr<int64_t>(),
                               flags.const_data_ptr<int32_t>(), trigger_ids.size(0), flags.size(0), pattern.size(0));
  at::Tensor out = at::empty_like(images);  // the images' strides: contiguous or channels_last
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND3(at::kHalf, at::kBFloat16, at::kByte, images.scalar_type(), "apply_triggers_cpu",
                                  [&] {
                                    apply_triggers_impl<scalar_t>(images, trigger_ids, flags, lut, colour, weight,
                                                                  pattern, pattern_index, additive, out);
                                  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) { m.impl("_apply_triggers_cpp", &apply_triggers_cpu); }
