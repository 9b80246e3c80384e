// Argument checks and form parsing of robustfast::knn_lid, shared by the kernels.
#pragma once
#include <ATen/ATen.h>

#include "common.h"

#include <cstdint>
#include <string>

namespace robustfast {

// robustfast.reference.knn_lid.FORMS
enum class LidForm { LITERATURE, LEVINA_BICKEL, LDREG };

constexpr double kLidMinRatio = 1e-6;     // robustfast.reference.knn_lid.MIN_RATIO
constexpr double kLidLdregLogEps = 1e-4;  // robustfast.reference.knn_lid.LDREG_LOG_EPS

inline LidForm parse_lid_form(c10::string_view form) {
  if (form == "literature") return LidForm::LITERATURE;
  if (form == "levina-bickel") return LidForm::LEVINA_BICKEL;
  if (form == "ldreg") return LidForm::LDREG;
  TORCH_CHECK(false, "knn_lid: form must be one of literature, levina-bickel, ldreg; got '", form, "'");
}

// queries (M, D), reference (N, D): contiguous, both float32 or both float64, on `device_type`. ks: non-empty,
// each in [2, available] where available = N − 1 when self_offset >= 0 (query i is reference row self_offset + i,
// excluded), else N. Returns the parsed form.
inline LidForm check_knn_lid_args(const at::Tensor& queries, const at::Tensor& reference, at::IntArrayRef ks,
                                  c10::string_view form, int64_t self_offset, c10::DeviceType device_type) {
  const char* where = device_type == c10::DeviceType::CUDA ? "CUDA" : "CPU";
  TORCH_CHECK(queries.device().type() == device_type, "knn_lid (", where, " kernel): queries must be a ", where,
              " tensor, got one on ", queries.device());
  TORCH_CHECK(reference.device() == queries.device(), "knn_lid: reference must be on queries' device (",
              queries.device(), "), got ", reference.device());
  TORCH_CHECK(queries.dim() == 2, "knn_lid: queries must be 2-d (M, D), got shape ", queries.sizes());
  TORCH_CHECK(reference.dim() == 2, "knn_lid: reference must be 2-d (N, D), got shape ", reference.sizes());
  TORCH_CHECK(queries.size(1) == reference.size(1), "knn_lid: queries have D = ", queries.size(1),
              " features but reference has D = ", reference.size(1));
  const auto dtype = queries.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "knn_lid: queries must be float32 or float64, got ",
              c10::toString(dtype));
  TORCH_CHECK(reference.scalar_type() == dtype, "knn_lid: reference must have queries' dtype (",
              c10::toString(dtype), "), got ", c10::toString(reference.scalar_type()));
  TORCH_CHECK(queries.is_contiguous() && reference.is_contiguous(),
              "knn_lid: queries and reference must be contiguous (call .contiguous())");
  const int64_t M = queries.size(0), N = reference.size(0);
  TORCH_CHECK(self_offset >= -1, "knn_lid: self_offset must be -1 (no self match) or >= 0, got ", self_offset);
  TORCH_CHECK(self_offset < 0 || self_offset + M <= N, "knn_lid: self_offset + M (", self_offset, " + ", M,
              ") must be <= N = ", N, ": query i is reference row self_offset + i");
  const int64_t available = self_offset >= 0 ? N - 1 : N;
  TORCH_CHECK(!ks.empty(), "knn_lid: ks must list at least one k");
  for (const int64_t k : ks) {
    TORCH_CHECK(k >= 2 && k <= available, "knn_lid: every k must lie in [2, ", available, "] (", available,
                " candidate neighbours), got k = ", k);
  }
  return parse_lid_form(form);
}

}  // namespace robustfast
