// CPU kernels of robustfast::segmented_batch_norm and its backward (robustfast.reference.segmented_batch_norm is
// the definition): batch norm without affine parameters whose statistics are taken per (segment, channel), a
// segment being `segment` consecutive samples of x (N, C, *spatial), N = S·segment.
//
//   forward, per (s, c):  μ, σ² (biased) over the segment's samples and positions, two passes; y = (x − μ)/σ̂
//   backward, per (s, c): recompute μ, σ̂; mean g and mean g·ŷ; dx = (g − mean g − ŷ·mean(g·ŷ))/σ̂
// One at::parallel_for over the S·C pairs; each pair walks `segment` rows of HW contiguous values.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

namespace {

void check_args(const at::Tensor& x, int64_t segment, double eps, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), name, " (CPU kernel): x must be a CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name,
              ": x must be float32 or float64");
  TORCH_CHECK(x.dim() >= 2, name, ": x must be (N, C, ...), got ", x.sizes());
  TORCH_CHECK(segment >= 1 && x.size(0) % segment == 0, name, ": segment must divide N = ", x.size(0));
  TORCH_CHECK(eps > 0, name, ": eps must be > 0");
  TORCH_CHECK(x.is_contiguous(), name, ": x must be contiguous");
}

struct Shape {
  int64_t segment, C, HW;
  int64_t base(int64_t s, int64_t c, int64_t row) const { return ((s * segment + row) * C + c) * HW; }
  double count() const { return static_cast<double>(segment * HW); }
};

// μ and 1/σ̂ of one (segment, channel), accumulated in T (float64 for float64 data, else float32).
template <typename T>
void moments(const T* x, const Shape& sh, int64_t s, int64_t c, double eps, T& mean, T& rstd) {
  T sum = 0;
  for (int64_t r = 0; r < sh.segment; ++r) {
    const T* p = x + sh.base(s, c, r);
    for (int64_t j = 0; j < sh.HW; ++j) sum += p[j];
  }
  mean = sum / T(sh.count());
  T sq = 0;
  for (int64_t r = 0; r < sh.segment; ++r) {
    const T* p = x + sh.base(s, c, r);
    for (int64_t j = 0; j < sh.HW; ++j) {
      const T d = p[j] - mean;
      sq += d * d;
    }
  }
  rstd = T(1) / std::sqrt(sq / T(sh.count()) + T(eps));
}

Shape shape_of(const at::Tensor& x, int64_t segment) {
  return Shape{segment, x.size(1), x.numel() / (x.size(0) * x.size(1))};
}

at::Tensor segmented_batch_norm_cpu(const at::Tensor& x, int64_t segment, double eps) {
  check_args(x, segment, eps, "segmented_batch_norm");
  at::Tensor y = at::empty_like(x);
  if (x.numel() == 0) return y;
  const Shape sh = shape_of(x, segment);
  const int64_t S = x.size(0) / segment;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "segmented_batch_norm_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, S * sh.C, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t s = i / sh.C, c = i % sh.C;
        scalar_t mean, rstd;
        moments<scalar_t>(xp, sh, s, c, eps, mean, rstd);
        for (int64_t r = 0; r < sh.segment; ++r) {
          const int64_t o = sh.base(s, c, r);
          for (int64_t j = 0; j < sh.HW; ++j) yp[o + j] = (xp[o + j] - mean) * rstd;
        }
      }
    });
  });
  return y;
}

at::Tensor segmented_batch_norm_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t segment,
                                             double eps) {
  check_args(x, segment, eps, "segmented_batch_norm_backward");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type() && grad.is_contiguous(),
              "segmented_batch_norm_backward: grad must be contiguous with the shape and dtype of x");
  at::Tensor dx = at::empty_like(x);
  if (x.numel() == 0) return dx;
  const Shape sh = shape_of(x, segment);
  const int64_t S = x.size(0) / segment;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "segmented_batch_norm_backward_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    scalar_t* dp = dx.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, S * sh.C, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t s = i / sh.C, c = i % sh.C;
        scalar_t mean, rstd;
        moments<scalar_t>(xp, sh, s, c, eps, mean, rstd);
        scalar_t sg = 0, sgy = 0;
        for (int64_t r = 0; r < sh.segment; ++r) {
          const int64_t o = sh.base(s, c, r);
          for (int64_t j = 0; j < sh.HW; ++j) {
            sg += gp[o + j];
            sgy += gp[o + j] * (xp[o + j] - mean) * rstd;
          }
        }
        const scalar_t mg = sg / scalar_t(sh.count()), mgy = sgy / scalar_t(sh.count());
        for (int64_t r = 0; r < sh.segment; ++r) {
          const int64_t o = sh.base(s, c, r);
          for (int64_t j = 0; j < sh.HW; ++j) {
            const scalar_t yhat = (xp[o + j] - mean) * rstd;
            dp[o + j] = (gp[o + j] - mg - yhat * mgy) * rstd;
          }
        }
      }
    });
  });
  return dx;
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_segmented_batch_norm_cpp", &segmented_batch_norm_cpu);
  m.impl("_segmented_batch_norm_backward_cpp", &segmented_batch_norm_backward_cpu);
}
