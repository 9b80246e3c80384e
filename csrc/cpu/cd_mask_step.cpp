// CPU kernels of robustfast::cd_mask_blend and robustfast::cd_mask_step (Cognitive Distillation's mask
// optimisation; robustfast.reference.cd_mask_step is the definition).
//   blend: m = (tanh θ + 1)/2 and x̃_c = m·x_c + (1 − m)·r_c, one sweep per image.
//   step:  per image, m of every mask pixel into a per-thread buffer (and ‖m‖₂ for p = 2), then one sweep that
//          forms ∂J/∂m = data + s·(γ-term + 2β/(C_m·H·W)·Σ_{in-bounds 4-neighbours}(m − m_n)), multiplies by
//          dm/dθ = (1 − tanh²θ)/2 and applies Adam (betas 0.1, 0.1; eps 1e−8; bias correction), writing θ, M, V.
// Images are spread over threads with at::parallel_for. Arithmetic in float (double for double data).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../common.h"

namespace {

constexpr double kBeta1 = 0.1, kBeta2 = 0.1, kEps = 1e-8;

void check_blend_args(const char* op, const at::Tensor& theta, const at::Tensor& x, const at::Tensor& r) {
  TORCH_CHECK(x.device().is_cpu(), op, " (CPU kernel): x must be a CPU tensor, got one on ", x.device());
  TORCH_CHECK(x.dim() == 4, op, ": x must be N×C×H×W, got shape ", x.sizes());
  const at::ScalarType dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": x must be float32 or float64, got ",
              robustfast::dtype_name(dtype));
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(theta.dim() == 4 && theta.size(0) == n && (theta.size(1) == 1 || theta.size(1) == c) &&
                  theta.size(2) == h && theta.size(3) == w,
              op, ": theta must be (N, 1 or C, H, W) for x of shape ", x.sizes(), ", got ", theta.sizes());
  TORCH_CHECK(r.dim() == 2 && r.size(0) == n && r.size(1) == c, op, ": r must be (N, C), got ", r.sizes());
  for (const at::Tensor* t : {&theta, &x, &r}) {
    TORCH_CHECK(t->device() == x.device() && t->scalar_type() == dtype, op,
                ": theta, x and r must share x's device and dtype");
    TORCH_CHECK(t->is_contiguous(), op, ": inputs must be contiguous (call .contiguous())");
  }
}

std::tuple<at::Tensor, at::Tensor> cd_mask_blend_cpu(const at::Tensor& theta, const at::Tensor& x,
                                                     const at::Tensor& r) {
  check_blend_args("cd_mask_blend", theta, x, r);
  at::Tensor m = at::empty_like(theta), xt = at::empty_like(x);
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), cm = theta.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cd_mask_blend_cpu", [&] {
    const scalar_t* th = theta.const_data_ptr<scalar_t>();
    const scalar_t* xs = x.const_data_ptr<scalar_t>();
    const scalar_t* rs = r.const_data_ptr<scalar_t>();
    scalar_t* ms = m.mutable_data_ptr<scalar_t>();
    scalar_t* out = xt.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        for (int64_t k = 0; k < cm * hw; ++k) ms[i * cm * hw + k] = (std::tanh(th[i * cm * hw + k]) + 1) / 2;
        for (int64_t ch = 0; ch < c; ++ch) {
          const scalar_t* mk = ms + (i * cm + (cm == 1 ? 0 : ch)) * hw;
          const scalar_t* xk = xs + (i * c + ch) * hw;
          scalar_t* ok = out + (i * c + ch) * hw;
          const scalar_t rc = rs[i * c + ch];
          for (int64_t k = 0; k < hw; ++k) ok[k] = mk[k] * xk[k] + (1 - mk[k]) * rc;
        }
      }
    });
  });
  return {m, xt};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cd_mask_step_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& r, const at::Tensor& theta,
    const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq, int64_t step, double lr, double gamma, double beta,
    int64_t p, double scale) {
  check_blend_args("cd_mask_step", theta, x, r);
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type() && grad.is_contiguous() &&
                  grad.device() == x.device(),
              "cd_mask_step: grad must be a contiguous tensor with x's shape, dtype and device");
  for (const at::Tensor* t : {&exp_avg, &exp_avg_sq}) {
    TORCH_CHECK(t->sizes() == theta.sizes() && t->scalar_type() == theta.scalar_type() && t->is_contiguous() &&
                    t->device() == theta.device(),
                "cd_mask_step: exp_avg and exp_avg_sq must be contiguous tensors with theta's shape, dtype and "
                "device");
  }
  TORCH_CHECK(step >= 1, "cd_mask_step: step must be >= 1, got ", step);
  TORCH_CHECK(std::isfinite(lr) && lr > 0, "cd_mask_step: lr must be finite and > 0, got ", lr);
  TORCH_CHECK(std::isfinite(gamma) && gamma >= 0, "cd_mask_step: gamma must be finite and >= 0, got ", gamma);
  TORCH_CHECK(std::isfinite(beta) && beta >= 0, "cd_mask_step: beta must be finite and >= 0, got ", beta);
  TORCH_CHECK(p == 1 || p == 2, "cd_mask_step: p must be 1 or 2, got ", p);
  TORCH_CHECK(std::isfinite(scale) && scale > 0, "cd_mask_step: scale must be finite and > 0, got ", scale);
  at::Tensor th_out = at::empty_like(theta), m_out = at::empty_like(exp_avg), v_out = at::empty_like(exp_avg_sq);
  const int64_t n = x.size(0), c = x.size(1), H = x.size(2), W = x.size(3), hw = H * W, cm = theta.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cd_mask_step_cpu", [&] {
    using T = scalar_t;
    const T step_size = static_cast<T>(lr / (1 - std::pow(kBeta1, static_cast<double>(step))));
    const T inv_sqrt_bc2 = static_cast<T>(1 / std::sqrt(1 - std::pow(kBeta2, static_cast<double>(step))));
    const T sparse = static_cast<T>(scale * gamma);
    const T tv = static_cast<T>(scale * 2 * beta / static_cast<double>(cm * hw));
    const T b1 = static_cast<T>(kBeta1), b2 = static_cast<T>(kBeta2), eps = static_cast<T>(kEps);
    const T* gs = grad.const_data_ptr<T>();
    const T* xs = x.const_data_ptr<T>();
    const T* rs = r.const_data_ptr<T>();
    const T* th = theta.const_data_ptr<T>();
    const T* ma = exp_avg.const_data_ptr<T>();
    const T* va = exp_avg_sq.const_data_ptr<T>();
    T* th_o = th_out.mutable_data_ptr<T>();
    T* ma_o = m_out.mutable_data_ptr<T>();
    T* va_o = v_out.mutable_data_ptr<T>();
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      std::vector<T> mbuf(cm * hw), tbuf(cm * hw), data(hw);
      for (int64_t i = b; i < e; ++i) {
        T sq = 0;
        for (int64_t k = 0; k < cm * hw; ++k) {
          const T t = std::tanh(th[i * cm * hw + k]);
          tbuf[k] = t;
          mbuf[k] = (t + 1) / 2;
          sq += mbuf[k] * mbuf[k];
        }
        const T sparse_coef = p == 1 ? sparse : sparse / std::sqrt(sq);
        for (int64_t plane = 0; plane < cm; ++plane) {
          std::fill(data.begin(), data.end(), T(0));
          for (int64_t ch = (cm == 1 ? 0 : plane); ch < (cm == 1 ? c : plane + 1); ++ch) {
            const T* gk = gs + (i * c + ch) * hw;
            const T* xk = xs + (i * c + ch) * hw;
            const T rc = rs[i * c + ch];
            for (int64_t k = 0; k < hw; ++k) data[k] += gk[k] * (xk[k] - rc);
          }
          const T* mp = mbuf.data() + plane * hw;
          const T* tp = tbuf.data() + plane * hw;
          const int64_t off = (i * cm + plane) * hw;
          for (int64_t y = 0; y < H; ++y) {
            for (int64_t xw = 0; xw < W; ++xw) {
              const int64_t k = y * W + xw;
              const T mk = mp[k];
              T lap = 0;
              if (y > 0) lap += mk - mp[k - W];
              if (y + 1 < H) lap += mk - mp[k + W];
              if (xw > 0) lap += mk - mp[k - 1];
              if (xw + 1 < W) lap += mk - mp[k + 1];
              const T gm = data[k] + (p == 1 ? sparse_coef : sparse_coef * mk) + tv * lap;
              const T g = gm * (1 - tp[k] * tp[k]) / 2;
              const T m1 = b1 * ma[off + k] + (1 - b1) * g;
              const T v1 = b2 * va[off + k] + (1 - b2) * g * g;
              th_o[off + k] = th[off + k] - step_size * m1 / (std::sqrt(v1) * inv_sqrt_bc2 + eps);
              ma_o[off + k] = m1;
              va_o[off + k] = v1;
            }
          }
        }
      }
    });
  });
  return {th_out, m_out, v_out};
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_cd_mask_blend_cpp", &cd_mask_blend_cpu);
  m.impl("_cd_mask_step_cpp", &cd_mask_step_cpu);
}
