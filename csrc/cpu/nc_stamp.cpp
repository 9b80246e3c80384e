// CPU kernels of robustfast::nc_stamp and nc_stamp_backward (robustfast.reference.nc_stamp is the definition):
// Neural Cleanse's stamp (1 − m_k)⊙x_b + m_k⊙p_k for K candidate triggers over one batch, and its gradient.
//
// Dense contiguous layouts: x (B, C, H, W), mask (K, H, W), pattern (K, C, H, W), out (K·B, C, H, W), S = H·W.
// The forward spreads the K·B·C planes over threads; each gradient spreads its own output's rows over threads and
// sums in a fixed order (k for ∂x, b for ∂p, then (c, b) for ∂m), so results do not depend on the thread count.
// float32 and float64: the data type is the compute type.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "../common.h"

namespace {

void check_args(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& pattern, const char* op) {
  TORCH_CHECK_VALUE(x.device().is_cpu() && mask.device().is_cpu() && pattern.device().is_cpu(), op,
                    ": x, mask and pattern must be CPU tensors");
  TORCH_CHECK_VALUE(x.dim() == 4 && mask.dim() == 3 && pattern.dim() == 4, op,
                    ": x must be B×C×H×W, mask K×H×W and pattern K×C×H×W");
  TORCH_CHECK_VALUE(pattern.size(0) == mask.size(0) && pattern.size(1) == x.size(1) &&
                        mask.size(1) == x.size(2) && mask.size(2) == x.size(3) && pattern.size(2) == x.size(2) &&
                        pattern.size(3) == x.size(3),
                    op, ": shapes do not fit: x ", x.sizes(), ", mask ", mask.sizes(), ", pattern ", pattern.sizes());
  TORCH_CHECK_VALUE(x.scalar_type() == mask.scalar_type() && x.scalar_type() == pattern.scalar_type() &&
                        (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble),
                    op, ": x, mask and pattern must all be float32 or all float64, got ",
                    robustfast::dtype_name(x.scalar_type()), ", ", robustfast::dtype_name(mask.scalar_type()), ", ",
                    robustfast::dtype_name(pattern.scalar_type()));
  TORCH_CHECK_VALUE(x.is_contiguous() && mask.is_contiguous() && pattern.is_contiguous(), op,
                    ": x, mask and pattern must be contiguous");
}

at::Tensor nc_stamp_cpu(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& pattern) {
  check_args(x, mask, pattern, "nc_stamp");
  const int64_t B = x.size(0), C = x.size(1), S = x.size(2) * x.size(3), K = mask.size(0);
  at::Tensor out = at::empty({K * B, C, x.size(2), x.size(3)}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "nc_stamp_cpu", [&] {
    const scalar_t* xs = x.const_data_ptr<scalar_t>();
    const scalar_t* ms = mask.const_data_ptr<scalar_t>();
    const scalar_t* ps = pattern.const_data_ptr<scalar_t>();
    scalar_t* os = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, K * B * C, std::max<int64_t>(1, 4096 / S), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {  // r = (k·B + b)·C + c
        const int64_t c = r % C, b = (r / C) % B, k = r / (C * B);
        const scalar_t* xr = xs + (b * C + c) * S;
        const scalar_t* mr = ms + k * S;
        const scalar_t* pr = ps + (k * C + c) * S;
        scalar_t* o = os + r * S;
        for (int64_t s = 0; s < S; ++s) o[s] = (scalar_t(1) - mr[s]) * xr[s] + mr[s] * pr[s];
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> nc_stamp_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                                     const at::Tensor& mask,
                                                                     const at::Tensor& pattern) {
  check_args(x, mask, pattern, "nc_stamp_backward");
  const int64_t B = x.size(0), C = x.size(1), S = x.size(2) * x.size(3), K = mask.size(0);
  TORCH_CHECK_VALUE(grad.device().is_cpu() && grad.scalar_type() == x.scalar_type() && grad.is_contiguous() &&
                        grad.dim() == 4 && grad.size(0) == K * B && grad.size(1) == C && grad.size(2) == x.size(2) &&
                        grad.size(3) == x.size(3),
                    "nc_stamp_backward: grad must be a contiguous CPU tensor of x's dtype, shape (K·B, C, H, W)");
  at::Tensor gx = at::zeros_like(x), gm = at::zeros_like(mask), gp = at::zeros_like(pattern);
  if (grad.numel() == 0) return {gx, gm, gp};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "nc_stamp_backward_cpu", [&] {
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* xs = x.const_data_ptr<scalar_t>();
    const scalar_t* ms = mask.const_data_ptr<scalar_t>();
    const scalar_t* ps = pattern.const_data_ptr<scalar_t>();
    scalar_t* gxs = gx.mutable_data_ptr<scalar_t>();
    scalar_t* gms = gm.mutable_data_ptr<scalar_t>();
    scalar_t* gps = gp.mutable_data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 4096 / S);
    at::parallel_for(0, B * C, grain, [&](int64_t r0, int64_t r1) {  // ∂x: rows (b, c), summed over k
      for (int64_t r = r0; r < r1; ++r) {
        scalar_t* o = gxs + r * S;
        for (int64_t k = 0; k < K; ++k) {
          const scalar_t* gr = g + (k * B * C + r) * S;
          const scalar_t* mr = ms + k * S;
          for (int64_t s = 0; s < S; ++s) o[s] += (scalar_t(1) - mr[s]) * gr[s];
        }
      }
    });
    at::parallel_for(0, K * C, grain, [&](int64_t r0, int64_t r1) {  // ∂p: rows (k, c), summed over b
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t c = r % C, k = r / C;
        scalar_t* o = gps + r * S;
        for (int64_t b = 0; b < B; ++b) {
          const scalar_t* gr = g + ((k * B + b) * C + c) * S;
          for (int64_t s = 0; s < S; ++s) o[s] += gr[s];
        }
        const scalar_t* mr = ms + k * S;
        for (int64_t s = 0; s < S; ++s) o[s] *= mr[s];
      }
    });
    at::parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {  // ∂m: rows k, summed over (c, b)
      for (int64_t k = k0; k < k1; ++k) {
        scalar_t* o = gms + k * S;
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* pr = ps + (k * C + c) * S;
          for (int64_t b = 0; b < B; ++b) {
            const scalar_t* gr = g + ((k * B + b) * C + c) * S;
            const scalar_t* xr = xs + (b * C + c) * S;
            for (int64_t s = 0; s < S; ++s) o[s] += gr[s] * (pr[s] - xr[s]);
          }
        }
      }
    });
  });
  return {gx, gm, gp};
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_nc_stamp_cpp", &nc_stamp_cpu);
  m.impl("_nc_stamp_backward_cpp", &nc_stamp_backward_cpu);
}
