// Argument checks of robustfast::apply_triggers for its CPU kernel.
#pragma once
#include <ATen/ATen.h>

#include "common.h"

#include <cstdint>
#include <string>

namespace robustfast {

// The stage bits of robustfast.reference.apply_triggers.
enum TriggerStage : int32_t {
  kLut = 1,
  kColour = 2,
  kBlend = 4,
  kAdd = 8,
  kMinMax = 16,
  kWrap = 32,
  kTruncate = 64,
};

// images (N, C, H, W) float or uint8, each sample one dense block (contiguous or channels_last); trigger_ids,
// pattern_index int64 (N,); flags int32 (T,); lut (T, C, L); colour (T, C, C+1); weight, additive (T, C, H, W);
// pattern (P, C, H, W); every parameter contiguous, in the compute dtype (float64 for float64 images, else
// float32), on the images' device. Every violation raises ValueError (TORCH_CHECK_VALUE) naming the argument.
// The value ranges (trigger_ids in [-1, T), pattern_index in [0, P), flags in [0, 127]) are checked by each
// kernel on its own (check_apply_triggers_indices on the CPU, where the values are at hand).
inline void check_apply_triggers_args(const at::Tensor& images, const at::Tensor& trigger_ids,
                                      const at::Tensor& flags, const at::Tensor& lut, const at::Tensor& colour,
                                      const at::Tensor& weight, const at::Tensor& pattern,
                                      const at::Tensor& pattern_index, const at::Tensor& additive,
                                      c10::DeviceType device_type) {
  TORCH_CHECK_VALUE(images.device().type() == device_type, "apply_triggers: images must be a ",
              c10::DeviceTypeName(device_type), " tensor, got one on ", images.device());
  TORCH_CHECK_VALUE(images.dim() == 4, "apply_triggers: images must be N×C×H×W, got shape ", images.sizes());
  const at::ScalarType dtype = images.scalar_type();
  TORCH_CHECK_VALUE(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16 ||
                  dtype == at::kByte,
              "apply_triggers: images must be float32, float64, float16, bfloat16 or uint8, got ",
              dtype_name(dtype));
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  TORCH_CHECK_VALUE(images.is_contiguous() || images.is_contiguous(at::MemoryFormat::ChannelsLast),
              "apply_triggers: images must be contiguous or channels_last");
  const at::ScalarType op_dtype = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const auto check = [&](const at::Tensor& t, const char* name, at::ScalarType want, at::IntArrayRef shape) {
    TORCH_CHECK_VALUE(t.device() == images.device(), "apply_triggers: ", name, " must be on the images' device (",
                images.device(), "), got one on ", t.device());
    TORCH_CHECK_VALUE(t.is_contiguous(), "apply_triggers: ", name, " must be contiguous");
    TORCH_CHECK_VALUE(t.scalar_type() == want, "apply_triggers: ", name, " must be ", dtype_name(want),
                ", got ", dtype_name(t.scalar_type()));
    TORCH_CHECK_VALUE(t.sizes() == shape, "apply_triggers: ", name, " must have shape ", shape, ", got ", t.sizes());
  };
  TORCH_CHECK_VALUE(flags.dim() == 1 && flags.size(0) >= 1, "apply_triggers: flags must be (T,) with T >= 1");
  const int64_t t = flags.size(0);
  TORCH_CHECK_VALUE(lut.dim() == 3 && lut.size(2) >= 2, "apply_triggers: lut must be (T, C, L) with L >= 2");
  TORCH_CHECK_VALUE(pattern.dim() == 4 && pattern.size(0) >= 1, "apply_triggers: pattern must be (P, C, H, W)");
  check(trigger_ids, "trigger_ids", at::kLong, {n});
  check(pattern_index, "pattern_index", at::kLong, {n});
  check(flags, "flags", at::kInt, {t});
  check(lut, "lut", op_dtype, {t, c, lut.size(2)});
  check(colour, "colour", op_dtype, {t, c, c + 1});
  check(weight, "weight", op_dtype, {t, c, h, w});
  check(additive, "additive", op_dtype, {t, c, h, w});
  check(pattern, "pattern", op_dtype, {pattern.size(0), c, h, w});
}

// Index ranges of a CPU call, before any kernel indexes with them: trigger_ids[n] in [-1, T) and
// pattern_index[n] in [0, P) for triggered images n, flags in [0, 127].
inline void check_apply_triggers_indices(const int64_t* ids, const int64_t* pidx, const int32_t* flags, int64_t n,
                                         int64_t t, int64_t p) {
  for (int64_t i = 0; i < t; ++i) {
    TORCH_CHECK_VALUE(flags[i] >= 0 && flags[i] <= 127, "apply_triggers: flags must be sums of the stage bits ",
                      "(0..127), got flags[", i, "] = ", flags[i]);
  }
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_VALUE(ids[i] >= -1 && ids[i] < t, "apply_triggers: trigger_ids must lie in [-1, ", t, ") for ", t,
                      " triggers, got trigger_ids[", i, "] = ", ids[i]);
    TORCH_CHECK_VALUE(ids[i] < 0 || (pidx[i] >= 0 && pidx[i] < p), "apply_triggers: pattern_index must lie in [0, ",
                      p, "), the rows of pattern, got pattern_index[", i, "] = ", pidx[i]);
  }
}

}  // namespace robustfast
