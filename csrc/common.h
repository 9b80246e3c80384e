// Helpers shared by every kernel of robustfast._C (CPU and CUDA host code).
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace robustfast {

// "torch.float32" rather than ATen's "Float", for messages.
inline std::string dtype_name(at::ScalarType dtype) {
  return "torch." + std::string(c10::getDtypeNames(dtype).first);
}

// The dtype kernels compute in (and in which per-sample parameters and losses are given): float64 for float64
// data, else float32. Python: robustfast._util.checks.opmath_dtype.
inline at::ScalarType opmath_dtype(at::ScalarType dtype) { return dtype == at::kDouble ? at::kDouble : at::kFloat; }

// Comparisons written so that a NaN operand `v` passes through, as in torch.clamp / torch.maximum.
template <typename T>
inline T clamp_keep_nan(T v, T lo, T hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

}  // namespace robustfast
