// Argument checks of robustfast::pgd_step, shared by the CPU and the CUDA kernels.
#pragma once
#include <ATen/ATen.h>

#include "common.h"

#include <cstdint>
#include <string>
#include <utility>

namespace robustfast {

enum class PgdNorm { Linf, L2 };

// Checks every argument of pgd_step for a kernel running on `device_type` and returns the parsed norm.
// Tensors must all live on x's device. x, grad, x0 share shape, strides and a floating dtype, and their storage
// is dense with each sample one contiguous block (contiguous or channels_last), so the kernels walk it flat;
// active is bool (N,), alpha and eps are (N,) in the opmath dtype (float64 for float64 x, else float32).
inline PgdNorm check_pgd_step_args(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& x0,
                                   const at::Tensor& active, const at::Tensor& alpha, const at::Tensor& eps,
                                   c10::string_view norm, double lower, double upper,
                                   c10::DeviceType device_type) {
  const char* where = device_type == c10::DeviceType::CUDA ? "CUDA" : "CPU";
  TORCH_CHECK(x.device().type() == device_type, "pgd_step (", where, " kernel): x must be a ", where,
              " tensor, got one on ", x.device());
  const auto check_device = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.device() == x.device(), "pgd_step: ", name, " must be on x's device (", x.device(),
                "), got one on ", t.device());
  };
  const auto check_tensor = [&](const at::Tensor& t, const char* name) {
    check_device(t, name);
    TORCH_CHECK(t.is_contiguous(), "pgd_step: ", name, " must be contiguous (call .contiguous())");
  };
  TORCH_CHECK(x.dim() >= 1, "pgd_step: x must have a leading sample dimension, got a 0-d tensor");
  TORCH_CHECK(x.is_non_overlapping_and_dense() && (x.size(0) <= 1 || x.stride(0) == x.numel() / x.size(0)),
              "pgd_step: x must be dense with each sample one contiguous block (contiguous or channels_last); "
              "call .contiguous()");
  const at::ScalarType dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
              "pgd_step: x must be float32, float64, float16 or bfloat16, got ", dtype_name(dtype));
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{grad, "grad"}, {x0, "x0"}}) {
    check_device(t, name);
    TORCH_CHECK(t.scalar_type() == dtype, "pgd_step: ", name, " must have x's dtype (", dtype_name(dtype),
                "), got ", dtype_name(t.scalar_type()));
    TORCH_CHECK(t.sizes() == x.sizes(), "pgd_step: ", name, " must have x's shape ", x.sizes(), ", got ",
                t.sizes());
    TORCH_CHECK(t.strides() == x.strides(), "pgd_step: ", name, " must have x's memory layout (strides ",
                x.strides(), "), got strides ", t.strides());
  }
  const int64_t n = x.size(0);
  check_tensor(active, "active");
  TORCH_CHECK(active.scalar_type() == at::kBool, "pgd_step: active must be a bool tensor, got ",
              dtype_name(active.scalar_type()));
  TORCH_CHECK(active.dim() == 1 && active.size(0) == n, "pgd_step: active must have shape (", n, ",), got ",
              active.sizes());
  const at::ScalarType op_dtype = opmath_dtype(dtype);
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{alpha, "alpha"}, {eps, "eps"}}) {
    check_tensor(t, name);
    TORCH_CHECK(t.scalar_type() == op_dtype, "pgd_step: ", name, " must be ", dtype_name(op_dtype),
                " for x of dtype ", dtype_name(dtype), ", got ", dtype_name(t.scalar_type()));
    TORCH_CHECK(t.dim() == 1 && t.size(0) == n, "pgd_step: ", name, " must have shape (", n, ",), got ",
                t.sizes());
  }
  TORCH_CHECK(lower < upper, "pgd_step: lower must be below upper, got lower=", lower, ", upper=", upper);
  if (norm == "Linf") return PgdNorm::Linf;
  if (norm == "L2") return PgdNorm::L2;
  TORCH_CHECK(false, "pgd_step: norm must be 'Linf' or 'L2', got '", norm, "'");
}

}  // namespace robustfast
