// CPU kernels of robustfast::token_cosine and robustfast::token_cosine_backward (definition:
// robustfast/reference/token_cosine.py). a, b: contiguous (B, T, D); token_mask: bool (T,).
//
//   token: J = (1/|S|) sum_{t in S} cos(a_t, b_t)      flat: J = cos(a_S, b_S)
//   cos(u, v) = u.v / (max(|u|, eta) max(|v|, eta));   dJ/du = g w (v/(mu mv) - [|u| > eta] c u/|u|^2)
//
// Parallel over samples; each sample's rows are walked once (forward) or twice (backward: statistics, then the
// write). Sums accumulate in the opmath type in independent lanes, so the compiler vectorises them.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common.h"

namespace {

constexpr double kEta = 1e-8;  // robustfast.reference.token_cosine.ETA

template <typename opmath_t>
struct Stats {
  opmath_t dot = 0, aa = 0, bb = 0;
};

template <typename scalar_t, typename opmath_t>
Stats<opmath_t> row_stats(const scalar_t* __restrict a, const scalar_t* __restrict b, int64_t d) {
  constexpr int K = 32 / sizeof(opmath_t);
  opmath_t dot[K] = {}, aa[K] = {}, bb[K] = {};
  int64_t i = 0;
  for (; i + K <= d; i += K) {
    for (int k = 0; k < K; ++k) {
      const opmath_t x = static_cast<opmath_t>(a[i + k]), y = static_cast<opmath_t>(b[i + k]);
      dot[k] += x * y;
      aa[k] += x * x;
      bb[k] += y * y;
    }
  }
  for (int k = 0; i < d; ++i, ++k) {
    const opmath_t x = static_cast<opmath_t>(a[i]), y = static_cast<opmath_t>(b[i]);
    dot[k] += x * y;
    aa[k] += x * x;
    bb[k] += y * y;
  }
  Stats<opmath_t> s;
  for (int k = 0; k < K; ++k) {
    s.dot += dot[k];
    s.aa += aa[k];
    s.bb += bb[k];
  }
  return s;
}

// (coefficient of b, coefficient of a) in dJ/du = cb v - ca u, for a row with statistics s and weight gw.
template <typename opmath_t>
inline void grad_coefficients(const Stats<opmath_t>& s, opmath_t gw, opmath_t& cb, opmath_t& ca) {
  const opmath_t eta = static_cast<opmath_t>(kEta);
  const opmath_t na = std::sqrt(s.aa);
  const opmath_t ma = std::max(na, eta), mb = std::max(std::sqrt(s.bb), eta);
  const opmath_t cos = s.dot / (ma * mb);
  cb = gw / (ma * mb);
  ca = na > eta ? gw * cos / std::max(s.aa, eta * eta) : opmath_t(0);
}

template <typename opmath_t>
inline opmath_t cosine(const Stats<opmath_t>& s) {
  const opmath_t eta = static_cast<opmath_t>(kEta);
  return s.dot / (std::max(std::sqrt(s.aa), eta) * std::max(std::sqrt(s.bb), eta));
}

bool parse_flat(c10::string_view reduction) {
  TORCH_CHECK(reduction == "token" || reduction == "flat", "token_cosine: reduction must be 'token' or 'flat'; got '",
              reduction, "'");
  return reduction == "flat";
}

void check_args(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  TORCH_CHECK(a.device().is_cpu(), "token_cosine: a must be on the CPU");
  TORCH_CHECK(a.dim() == 3 && a.is_contiguous(), "token_cosine: a must be a contiguous B x T x D tensor");
  TORCH_CHECK(b.sizes() == a.sizes() && b.scalar_type() == a.scalar_type() && b.is_contiguous() &&
                  b.device() == a.device(),
              "token_cosine: b must be contiguous with a's shape, dtype and device");
  TORCH_CHECK(a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble,
              "token_cosine: a must be float32 or float64, got ", robustfast::dtype_name(a.scalar_type()));
  TORCH_CHECK(mask.scalar_type() == at::kBool && mask.dim() == 1 && mask.size(0) == a.size(1) &&
                  mask.is_contiguous() && mask.device() == a.device(),
              "token_cosine: token_mask must be a contiguous bool tensor of shape (T,)");
}

int64_t count(const bool* mask, int64_t t) { return std::count(mask, mask + t, true); }

at::Tensor token_cosine_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& token_mask,
                            c10::string_view reduction) {
  check_args(a, b, token_mask);
  const bool flat = parse_flat(reduction);
  const int64_t n = a.size(0), t = a.size(1), d = a.size(2);
  at::Tensor out = at::zeros({n}, a.options().dtype(robustfast::opmath_dtype(a.scalar_type())));
  if (a.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "token_cosine_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    const bool* mask = token_mask.const_data_ptr<bool>();
    opmath_t* po = out.mutable_data_ptr<opmath_t>();
    const int64_t selected = count(mask, t);
    at::parallel_for(0, n, std::max<int64_t>(1, at::internal::GRAIN_SIZE / (t * d)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        Stats<opmath_t> total;
        opmath_t sum = 0;
        for (int64_t j = 0; j < t; ++j) {
          if (!mask[j]) continue;
          const Stats<opmath_t> s = row_stats<scalar_t, opmath_t>(pa + (i * t + j) * d, pb + (i * t + j) * d, d);
          if (flat) {
            total.dot += s.dot;
            total.aa += s.aa;
            total.bb += s.bb;
          } else {
            sum += cosine(s);
          }
        }
        if (selected > 0) po[i] = flat ? cosine(total) : sum / static_cast<opmath_t>(selected);
      }
    });
  });
  return out;
}

at::Tensor token_cosine_backward_cpu(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& b,
                                     const at::Tensor& token_mask, c10::string_view reduction) {
  check_args(a, b, token_mask);
  const bool flat = parse_flat(reduction);
  const int64_t n = a.size(0), t = a.size(1), d = a.size(2);
  TORCH_CHECK(grad.dim() == 1 && grad.size(0) == n && grad.is_contiguous() &&
                  grad.scalar_type() == robustfast::opmath_dtype(a.scalar_type()),
              "token_cosine_backward: grad must be a contiguous (B,) tensor in the compute dtype");
  at::Tensor out = at::zeros_like(a, at::MemoryFormat::Contiguous);
  if (a.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "token_cosine_backward_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    const bool* mask = token_mask.const_data_ptr<bool>();
    const opmath_t* pg = grad.const_data_ptr<opmath_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    const int64_t selected = count(mask, t);
    if (selected == 0) return;
    at::parallel_for(0, n, std::max<int64_t>(1, at::internal::GRAIN_SIZE / (t * d)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        opmath_t cb = 0, ca = 0;
        if (flat) {
          Stats<opmath_t> total;
          for (int64_t j = 0; j < t; ++j) {
            if (!mask[j]) continue;
            const Stats<opmath_t> s = row_stats<scalar_t, opmath_t>(pa + (i * t + j) * d, pb + (i * t + j) * d, d);
            total.dot += s.dot;
            total.aa += s.aa;
            total.bb += s.bb;
          }
          grad_coefficients(total, pg[i], cb, ca);
        }
        const opmath_t gw = pg[i] / static_cast<opmath_t>(selected);
        for (int64_t j = 0; j < t; ++j) {
          if (!mask[j]) continue;
          const scalar_t* ra = pa + (i * t + j) * d;
          const scalar_t* rb = pb + (i * t + j) * d;
          if (!flat) grad_coefficients(row_stats<scalar_t, opmath_t>(ra, rb, d), gw, cb, ca);
          scalar_t* ro = po + (i * t + j) * d;
          for (int64_t k = 0; k < d; ++k) {
            ro[k] = static_cast<scalar_t>(cb * static_cast<opmath_t>(rb[k]) - ca * static_cast<opmath_t>(ra[k]));
          }
        }
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_token_cosine_cpp", &token_cosine_cpu);
  m.impl("_token_cosine_backward_cpp", &token_cosine_backward_cpu);
}
