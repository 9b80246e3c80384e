// CPU kernel of robustfast::pgd_step: one projected-gradient step, out of place.
//
//   Linf: delta = clip(x + alpha*sign(g) - x0, -eps, eps)
//   L2:   delta = x + alpha*g/(||g||+1e-10) - x0, rescaled so that ||delta|| <= eps
//   out = clamp(x0 + delta, lower, upper); rows with active == false keep x.
//
// Arithmetic runs in the opmath type (float for half/bfloat16/float, double for double); norms accumulate in
// it and every element is rounded once, when stored. Linf is parallel over the flat index (so a single sample
// still uses every core); L2 is parallel over rows, or over the elements of each row when rows are few and long.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "../pgd_step_checks.h"

namespace {

using robustfast::clamp_keep_nan;

constexpr double kGradNormEps = 1e-10;  // robustfast.reference.pgd_step.GRAD_NORM_EPS

// sign(g) with sign(0) = sign(NaN) = 0, as torch.sign on CPU.
template <typename T>
inline T sign_of(T g) {
  return (g > T(0) ? T(1) : T(0)) - (g < T(0) ? T(1) : T(0));
}

// Linf step on elements [0, len) of one row (pointers already offset).
template <typename scalar_t, typename opmath_t>
void linf_span(const scalar_t* __restrict x, const scalar_t* __restrict g, const scalar_t* __restrict x0,
               scalar_t* __restrict out, int64_t len, opmath_t a, opmath_t e, opmath_t lo, opmath_t hi) {
  for (int64_t i = 0; i < len; ++i) {
    const opmath_t xv = static_cast<opmath_t>(x[i]);
    const opmath_t gv = static_cast<opmath_t>(g[i]);
    const opmath_t x0v = static_cast<opmath_t>(x0[i]);
    opmath_t d = (xv + a * sign_of(gv)) - x0v;
    d = clamp_keep_nan(d, -e, e);
    out[i] = static_cast<scalar_t>(clamp_keep_nan(x0v + d, lo, hi));
  }
}

// Independent partial sums (kLanes of them) so the compiler can vectorise the reduction without reassociating.
template <typename opmath_t>
constexpr int kLanes = 64 / sizeof(opmath_t);

template <typename opmath_t>
inline opmath_t sum_lanes(const opmath_t* acc) {
  opmath_t s = 0;
  for (int k = 0; k < kLanes<opmath_t>; ++k) s += acc[k];
  return s;
}

template <typename scalar_t, typename opmath_t>
opmath_t sum_sq(const scalar_t* __restrict g, int64_t len) {
  constexpr int K = kLanes<opmath_t>;
  opmath_t acc[K] = {};
  int64_t i = 0;
  for (; i + K <= len; i += K) {
    for (int k = 0; k < K; ++k) {
      const opmath_t v = static_cast<opmath_t>(g[i + k]);
      acc[k] += v * v;
    }
  }
  for (int k = 0; i < len; ++i, ++k) {
    const opmath_t v = static_cast<opmath_t>(g[i]);
    acc[k] += v * v;
  }
  return sum_lanes(acc);
}

// sum over the span of (x + scale*g - x0)^2, the squared norm of the unprojected delta.
template <typename scalar_t, typename opmath_t>
opmath_t delta_sum_sq(const scalar_t* __restrict x, const scalar_t* __restrict g, const scalar_t* __restrict x0,
                      int64_t len, opmath_t scale) {
  constexpr int K = kLanes<opmath_t>;
  opmath_t acc[K] = {};
  int64_t i = 0;
  for (; i + K <= len; i += K) {
    for (int k = 0; k < K; ++k) {
      const opmath_t d = (static_cast<opmath_t>(x[i + k]) + scale * static_cast<opmath_t>(g[i + k])) -
                         static_cast<opmath_t>(x0[i + k]);
      acc[k] += d * d;
    }
  }
  for (int k = 0; i < len; ++i, ++k) {
    const opmath_t d =
        (static_cast<opmath_t>(x[i]) + scale * static_cast<opmath_t>(g[i])) - static_cast<opmath_t>(x0[i]);
    acc[k] += d * d;
  }
  return sum_lanes(acc);
}

template <typename scalar_t, typename opmath_t>
void l2_write(const scalar_t* __restrict x, const scalar_t* __restrict g, const scalar_t* __restrict x0,
              scalar_t* __restrict out, int64_t len, opmath_t scale, opmath_t factor, opmath_t lo, opmath_t hi) {
  for (int64_t i = 0; i < len; ++i) {
    const opmath_t x0v = static_cast<opmath_t>(x0[i]);
    const opmath_t d = (static_cast<opmath_t>(x[i]) + scale * static_cast<opmath_t>(g[i])) - x0v;
    out[i] = static_cast<scalar_t>(clamp_keep_nan(x0v + d * factor, lo, hi));
  }
}

// alpha / (||g|| + 1e-10): the factor that turns g into the step.
template <typename opmath_t>
inline opmath_t l2_step_scale(opmath_t grad_sq, opmath_t alpha) {
  return alpha / (std::sqrt(grad_sq) + static_cast<opmath_t>(kGradNormEps));
}

// min(eps / ||delta||, 1), and 1 when delta vanishes (the reference's eps/0 = inf clamped to 1).
template <typename opmath_t>
inline opmath_t l2_projection_factor(opmath_t delta_sq, opmath_t eps) {
  const opmath_t dn = std::sqrt(delta_sq);
  if (dn == opmath_t(0)) return opmath_t(1);
  const opmath_t f = eps / dn;
  return f > opmath_t(1) ? opmath_t(1) : f;  // NaN passes through, as in torch.clamp
}

template <typename scalar_t>
void copy_span(const scalar_t* src, scalar_t* dst, int64_t len) {
  std::memcpy(dst, src, static_cast<size_t>(len) * sizeof(scalar_t));
}

template <typename scalar_t>
void pgd_step_linf_impl(const scalar_t* x, const scalar_t* g, const scalar_t* x0, const bool* active,
                        const at::opmath_type<scalar_t>* alpha, const at::opmath_type<scalar_t>* eps,
                        scalar_t* out, int64_t n, int64_t d, double lower, double upper) {
  using opmath_t = at::opmath_type<scalar_t>;
  const opmath_t lo = static_cast<opmath_t>(lower), hi = static_cast<opmath_t>(upper);
  at::parallel_for(0, n * d, at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
    // The chunk [begin, end) may start and end inside rows; walk it row by row.
    for (int64_t i = begin; i < end;) {
      const int64_t row = i / d;
      const int64_t stop = std::min(end, (row + 1) * d);
      if (active[row]) {
        linf_span(x + i, g + i, x0 + i, out + i, stop - i, alpha[row], eps[row], lo, hi);
      } else {
        copy_span(x + i, out + i, stop - i);
      }
      i = stop;
    }
  });
}

template <typename scalar_t>
void pgd_step_l2_impl(const scalar_t* x, const scalar_t* g, const scalar_t* x0, const bool* active,
                      const at::opmath_type<scalar_t>* alpha, const at::opmath_type<scalar_t>* eps, scalar_t* out,
                      int64_t n, int64_t d, double lower, double upper) {
  using opmath_t = at::opmath_type<scalar_t>;
  const opmath_t lo = static_cast<opmath_t>(lower), hi = static_cast<opmath_t>(upper);
  const int64_t grain = at::internal::GRAIN_SIZE;
  if (n >= at::get_num_threads() || d < 4 * grain) {
    // Rows in parallel, each row's three passes by one thread (the row stays in its cache).
    at::parallel_for(0, n, std::max<int64_t>(1, grain / d), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t off = r * d;
        if (!active[r]) {
          copy_span(x + off, out + off, d);
          continue;
        }
        const opmath_t scale = l2_step_scale(sum_sq<scalar_t, opmath_t>(g + off, d), alpha[r]);
        const opmath_t factor =
            l2_projection_factor(delta_sum_sq<scalar_t, opmath_t>(x + off, g + off, x0 + off, d, scale), eps[r]);
        l2_write(x + off, g + off, x0 + off, out + off, d, scale, factor, lo, hi);
      }
    });
    return;
  }
  // Few long rows: one row at a time, every pass parallel over the row's elements.
  for (int64_t r = 0; r < n; ++r) {
    const int64_t off = r * d;
    const scalar_t *xr = x + off, *gr = g + off, *x0r = x0 + off;
    scalar_t* outr = out + off;
    if (!active[r]) {
      at::parallel_for(0, d, grain, [&](int64_t b, int64_t e) { copy_span(xr + b, outr + b, e - b); });
      continue;
    }
    const opmath_t grad_sq = at::parallel_reduce(
        0, d, grain, opmath_t(0),
        [&](int64_t b, int64_t e, opmath_t acc) { return acc + sum_sq<scalar_t, opmath_t>(gr + b, e - b); },
        std::plus<opmath_t>());
    const opmath_t scale = l2_step_scale(grad_sq, alpha[r]);
    const opmath_t delta_sq = at::parallel_reduce(
        0, d, grain, opmath_t(0),
        [&](int64_t b, int64_t e, opmath_t acc) {
          return acc + delta_sum_sq<scalar_t, opmath_t>(xr + b, gr + b, x0r + b, e - b, scale);
        },
        std::plus<opmath_t>());
    const opmath_t factor = l2_projection_factor(delta_sq, eps[r]);
    at::parallel_for(0, d, grain, [&](int64_t b, int64_t e) {
      l2_write(xr + b, gr + b, x0r + b, outr + b, e - b, scale, factor, lo, hi);
    });
  }
}

at::Tensor pgd_step_cpu(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& active,
                        const at::Tensor& alpha, const at::Tensor& eps, c10::string_view norm, double lower,
                        double upper) {
  const robustfast::PgdNorm kind =
      robustfast::check_pgd_step_args(x, grad, x0, active, alpha, eps, norm, lower, upper, c10::DeviceType::CPU);
  at::Tensor out = at::empty_like(x);  // x's strides: the kernels write the storage in x's order
  const int64_t n = x.size(0);
  if (out.numel() == 0) return out;
  const int64_t d = x.numel() / n;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pgd_step_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const auto impl = kind == robustfast::PgdNorm::Linf ? pgd_step_linf_impl<scalar_t> : pgd_step_l2_impl<scalar_t>;
    impl(x.const_data_ptr<scalar_t>(), grad.const_data_ptr<scalar_t>(), x0.const_data_ptr<scalar_t>(),
         active.const_data_ptr<bool>(), alpha.const_data_ptr<opmath_t>(), eps.const_data_ptr<opmath_t>(),
         out.mutable_data_ptr<scalar_t>(), n, d, lower, upper);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) { m.impl("_pgd_step_cpp", &pgd_step_cpu); }
