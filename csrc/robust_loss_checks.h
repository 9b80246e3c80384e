// Argument checks and kind parsing of robustfast::robust_loss_fwd / robust_loss_bwd, shared by the kernels.
#pragma once
#include <ATen/ATen.h>

#include "common.h"

#include <cmath>
#include <cstdint>
#include <string>

namespace robustfast {

// The 17 losses of robustfast.reference.robust_loss.LOSSES, parsed once per call.
enum class RobustLossKind {
  CE,
  FL,
  MAE,
  RCE,
  GCE,
  SCE,
  NCE,
  NFL,
  NGCE,
  NMAE,
  NRCE,
  NCE_RCE,
  NCE_MAE,
  NFL_RCE,
  NFL_MAE,
  NGCE_RCE,
  NGCE_MAE,
};

inline RobustLossKind parse_robust_loss_kind(c10::string_view kind) {
  static constexpr struct {
    const char* name;
    RobustLossKind kind;
  } kTable[] = {
      {"ce", RobustLossKind::CE},           {"fl", RobustLossKind::FL},
      {"mae", RobustLossKind::MAE},         {"rce", RobustLossKind::RCE},
      {"gce", RobustLossKind::GCE},         {"sce", RobustLossKind::SCE},
      {"nce", RobustLossKind::NCE},         {"nfl", RobustLossKind::NFL},
      {"ngce", RobustLossKind::NGCE},       {"nmae", RobustLossKind::NMAE},
      {"nrce", RobustLossKind::NRCE},       {"nce+rce", RobustLossKind::NCE_RCE},
      {"nce+mae", RobustLossKind::NCE_MAE}, {"nfl+rce", RobustLossKind::NFL_RCE},
      {"nfl+mae", RobustLossKind::NFL_MAE}, {"ngce+rce", RobustLossKind::NGCE_RCE},
      {"ngce+mae", RobustLossKind::NGCE_MAE},
  };
  std::string names;
  for (const auto& e : kTable) {
    if (kind == e.name) return e.kind;
    names += names.empty() ? "" : ", ";
    names += e.name;
  }
  TORCH_CHECK(false, "robust_loss: kind must be one of ", names, "; got '", kind, "'");
}

// Checks logits, labels and the hyperparameters for a kernel running on `device_type`; returns the parsed kind.
// logits: (B, K) contiguous float32/float64/float16/bfloat16, K >= 2. labels: (B,) contiguous int64 on logits'
// device (their range [0, K) is checked by the kernels). alpha, beta finite; gamma >= 0; q > 0.
inline RobustLossKind check_robust_loss_args(const char* op, const at::Tensor& logits, const at::Tensor& labels,
                                             c10::string_view kind, double alpha, double beta, double gamma,
                                             double q, c10::DeviceType device_type) {
  const char* where = device_type == c10::DeviceType::CUDA ? "CUDA" : "CPU";
  TORCH_CHECK(logits.device().type() == device_type, op, " (", where, " kernel): logits must be a ", where,
              " tensor, got one on ", logits.device());
  TORCH_CHECK(logits.dim() == 2, op, ": logits must be 2-d (batch, num_classes), got shape ", logits.sizes());
  const at::ScalarType dtype = logits.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16, op,
              ": logits must be float32, float64, float16 or bfloat16, got ", dtype_name(dtype));
  TORCH_CHECK(logits.size(1) >= 2, op, ": logits must have at least 2 classes (dim 1), got shape ",
              logits.sizes());
  TORCH_CHECK(logits.is_contiguous(), op, ": logits must be contiguous (call .contiguous())");
  TORCH_CHECK(labels.device() == logits.device(), op, ": labels must be on logits' device (", logits.device(),
              "), got one on ", labels.device());
  TORCH_CHECK(labels.scalar_type() == at::kLong, op, ": labels must be int64, got ",
              dtype_name(labels.scalar_type()));
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), op, ": labels must have shape (",
              logits.size(0), ",), got ", labels.sizes());
  TORCH_CHECK(labels.is_contiguous(), op, ": labels must be contiguous (call .contiguous())");
  TORCH_CHECK(std::isfinite(alpha) && std::isfinite(beta), op, ": alpha and beta must be finite, got alpha=", alpha,
              ", beta=", beta);
  TORCH_CHECK(std::isfinite(gamma) && gamma >= 0, op, ": gamma must be finite and >= 0, got ", gamma);
  TORCH_CHECK(std::isfinite(q) && q > 0, op, ": q must be finite and > 0, got ", q);
  return parse_robust_loss_kind(kind);
}

// As check_robust_loss_args, plus grad_loss: (B,) contiguous on logits' device, in the loss dtype.
inline RobustLossKind check_robust_loss_bwd_args(const at::Tensor& grad_loss, const at::Tensor& logits,
                                                 const at::Tensor& labels, c10::string_view kind, double alpha,
                                                 double beta, double gamma, double q, c10::DeviceType device_type) {
  const RobustLossKind k =
      check_robust_loss_args("robust_loss_bwd", logits, labels, kind, alpha, beta, gamma, q, device_type);
  TORCH_CHECK(grad_loss.device() == logits.device(), "robust_loss_bwd: grad_loss must be on logits' device (",
              logits.device(), "), got one on ", grad_loss.device());
  const at::ScalarType loss_dtype = opmath_dtype(logits.scalar_type());
  TORCH_CHECK(grad_loss.scalar_type() == loss_dtype, "robust_loss_bwd: grad_loss must be ",
              dtype_name(loss_dtype), " for logits of dtype ",
              dtype_name(logits.scalar_type()), ", got ",
              dtype_name(grad_loss.scalar_type()));
  TORCH_CHECK(grad_loss.dim() == 1 && grad_loss.size(0) == logits.size(0),
              "robust_loss_bwd: grad_loss must have shape (", logits.size(0), ",), got ", grad_loss.sizes());
  TORCH_CHECK(grad_loss.is_contiguous(), "robust_loss_bwd: grad_loss must be contiguous (call .contiguous())");
  return k;
}

}  // namespace robustfast
