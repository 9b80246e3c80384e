// CPU kernels of robustfast::adv_loss / adv_loss_backward (robustfast.reference.adv_loss is the definition): the
// per-row losses of adversarial training (KL, TRADES, MART) of clean logits a and adversarial logits b.
//
// Per row, one sweep takes both maxima, one the two log-sum-exps; the forward then sums the KL and the kind's
// terms, the backward recomputes the same statistics and writes both gradients:
//   kl/trades  ∂KL/∂a = p ⊙ (log p − log q − KL), ∂KL/∂b = q − p; trades adds the CE term p − e_y to ∂a;
//   mart       ∂b = q − e_y + q_ŷ/(1.0001 − q_ŷ + ε)(e_ŷ − q) + β w (q Σ_k p_k r_k − p ⊙ r),  r = q/(q + ε),
//              ∂a = β (w p ⊙ (log p − log(q + ε) − KL_ε) − KL_ε p_y (e_y − p)),  w = 1.0000001 − p_y.
// Arithmetic in the opmath type (float; double for double logits); rows are spread over threads with
// at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../common.h"

namespace {

constexpr double kLogEps = 1e-12;
constexpr double kMargin = 1.0001;
constexpr double kWeight = 1.0000001;

enum class Kind { KL, TRADES, MART };

Kind parse_kind(c10::string_view kind) {
  if (kind == "kl") return Kind::KL;
  if (kind == "trades") return Kind::TRADES;
  if (kind == "mart") return Kind::MART;
  TORCH_CHECK(false, "adv_loss: kind must be one of kl, trades, mart; got '", kind, "'");
}

Kind check_args(const char* op, const at::Tensor& a, const at::Tensor& b, const at::Tensor& labels,
                c10::string_view kind, double beta) {
  TORCH_CHECK(a.device().is_cpu(), op, " (CPU kernel): clean_logits must be a CPU tensor, got one on ", a.device());
  TORCH_CHECK(a.dim() == 2 && a.size(1) >= 2, op, ": clean_logits must be B×K with K >= 2, got shape ", a.sizes());
  TORCH_CHECK(a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble, op,
              ": clean_logits must be float32 or float64, got ", robustfast::dtype_name(a.scalar_type()));
  TORCH_CHECK(b.sizes() == a.sizes() && b.scalar_type() == a.scalar_type() && b.device() == a.device(), op,
              ": adv_logits must match clean_logits in shape, dtype and device");
  TORCH_CHECK(a.is_contiguous() && b.is_contiguous(), op, ": logits must be contiguous (call .contiguous())");
  TORCH_CHECK(labels.scalar_type() == at::kLong && labels.dim() == 1 && labels.size(0) == a.size(0) &&
                  labels.is_contiguous() && labels.device() == a.device(),
              op, ": labels must be a contiguous int64 tensor of shape (", a.size(0), ",) on the logits' device");
  TORCH_CHECK(std::isfinite(beta) && beta >= 0, op, ": beta must be finite and >= 0, got ", beta);
  const int64_t* y = labels.const_data_ptr<int64_t>();
  for (int64_t r = 0; r < labels.size(0); ++r) {
    TORCH_CHECK(y[r] >= 0 && y[r] < a.size(1), op, ": labels must lie in [0, ", a.size(1), "), got ", y[r],
                " at index ", r);
  }
  return parse_kind(kind);
}

// One row's statistics: log-softmaxes la, lb (into buffers), p = e^la, q = e^lb, the KL of the kind, ŷ.
template <typename T>
struct RowStats {
  T kl = 0;
  int64_t hat = -1;
};

template <typename S, typename T>
RowStats<T> row_stats(const S* a, const S* b, int64_t K, int64_t y, Kind kind, T* la, T* lb) {
  T ma = -std::numeric_limits<T>::infinity(), mb = ma;
  for (int64_t k = 0; k < K; ++k) {
    ma = std::max(ma, static_cast<T>(a[k]));
    mb = std::max(mb, static_cast<T>(b[k]));
  }
  T sa = 0, sb = 0;
  for (int64_t k = 0; k < K; ++k) {
    la[k] = static_cast<T>(a[k]) - ma;
    lb[k] = static_cast<T>(b[k]) - mb;
    sa += std::exp(la[k]);
    sb += std::exp(lb[k]);
  }
  const T lsa = std::log(sa), lsb = std::log(sb);
  RowStats<T> st;
  T best = -1;
  for (int64_t k = 0; k < K; ++k) {
    la[k] -= lsa;
    lb[k] -= lsb;
    const T p = std::exp(la[k]), q = std::exp(lb[k]);
    const T log_q = kind == Kind::MART ? std::log(q + T(kLogEps)) : lb[k];
    st.kl += p * (la[k] - log_q);
    if (k != y && q > best) {
      best = q;
      st.hat = k;
    }
  }
  if (st.hat < 0) st.hat = y == 0 ? 1 : 0;  // q holds NaN: any class other than y, so that indexing stays in range
  return st;
}

template <typename S>
void fwd_rows(const S* a, const S* b, const int64_t* y, at::opmath_type<S>* out, int64_t r0, int64_t r1, int64_t K,
              Kind kind, double beta) {
  using T = at::opmath_type<S>;
  std::vector<T> la(K), lb(K);
  for (int64_t r = r0; r < r1; ++r) {
    const S* ar = a + r * K;
    const S* br = b + r * K;
    const RowStats<T> st = row_stats(ar, br, K, y[r], kind, la.data(), lb.data());
    const T B = static_cast<T>(beta);
    if (kind == Kind::KL) {
      out[r] = st.kl;
    } else if (kind == Kind::TRADES) {
      out[r] = -la[y[r]] + B * st.kl;
    } else {
      const T q_hat = std::exp(lb[st.hat]);
      out[r] = -lb[y[r]] - std::log(T(kMargin) - q_hat + T(kLogEps)) + B * st.kl * (T(kWeight) - std::exp(la[y[r]]));
    }
  }
}

template <typename S>
void bwd_rows(const at::opmath_type<S>* g, const S* a, const S* b, const int64_t* y, S* da, S* db, int64_t r0,
              int64_t r1, int64_t K, Kind kind, double beta) {
  using T = at::opmath_type<S>;
  std::vector<T> la(K), lb(K);
  const T B = static_cast<T>(beta);
  for (int64_t r = r0; r < r1; ++r) {
    const RowStats<T> st = row_stats(a + r * K, b + r * K, K, y[r], kind, la.data(), lb.data());
    const T gr = g[r];
    S* dar = da + r * K;
    S* dbr = db + r * K;
    const int64_t yr = y[r];
    if (kind != Kind::MART) {
      const T ca = kind == Kind::TRADES ? B : T(1);
      for (int64_t k = 0; k < K; ++k) {
        const T p = std::exp(la[k]), q = std::exp(lb[k]);
        T dak = ca * p * (la[k] - lb[k] - st.kl);
        if (kind == Kind::TRADES) dak += p - T(k == yr);
        dar[k] = static_cast<S>(gr * dak);
        dbr[k] = static_cast<S>(gr * ca * (q - p));
      }
      continue;
    }
    const T p_y = std::exp(la[yr]), w = T(kWeight) - p_y;
    const T q_hat = std::exp(lb[st.hat]);
    const T c_hat = q_hat / (T(kMargin) - q_hat + T(kLogEps));
    T pr = 0;
    for (int64_t k = 0; k < K; ++k) {
      const T q = std::exp(lb[k]);
      pr += std::exp(la[k]) * q / (q + T(kLogEps));
    }
    for (int64_t k = 0; k < K; ++k) {
      const T p = std::exp(la[k]), q = std::exp(lb[k]);
      const T rk = q / (q + T(kLogEps));
      const T dbk = (q - T(k == yr)) + c_hat * (T(k == st.hat) - q) + B * w * (q * pr - p * rk);
      const T dak = B * (w * p * (la[k] - std::log(q + T(kLogEps)) - st.kl) - st.kl * p_y * (T(k == yr) - p));
      dar[k] = static_cast<S>(gr * dak);
      dbr[k] = static_cast<S>(gr * dbk);
    }
  }
}

int64_t row_grain(int64_t K) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / (8 * K)); }

at::Tensor adv_loss_fwd_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& labels,
                            c10::string_view kind, double beta) {
  const Kind k = check_args("adv_loss", a, b, labels, kind, beta);
  const int64_t B = a.size(0), K = a.size(1);
  at::Tensor loss = at::empty({B}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "adv_loss_fwd_cpu", [&] {
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    const int64_t* yp = labels.const_data_ptr<int64_t>();
    scalar_t* out = loss.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, row_grain(K),
                     [&](int64_t r0, int64_t r1) { fwd_rows<scalar_t>(ap, bp, yp, out, r0, r1, K, k, beta); });
  });
  return loss;
}

std::tuple<at::Tensor, at::Tensor> adv_loss_bwd_cpu(const at::Tensor& grad_loss, const at::Tensor& a,
                                                    const at::Tensor& b, const at::Tensor& labels,
                                                    c10::string_view kind, double beta) {
  const Kind k = check_args("adv_loss_backward", a, b, labels, kind, beta);
  const int64_t B = a.size(0), K = a.size(1);
  TORCH_CHECK(grad_loss.scalar_type() == a.scalar_type() && grad_loss.dim() == 1 && grad_loss.size(0) == B &&
                  grad_loss.is_contiguous() && grad_loss.device() == a.device(),
              "adv_loss_backward: grad_loss must be a contiguous (", B, ",) tensor of the logits' dtype");
  at::Tensor da = at::empty_like(a, at::MemoryFormat::Contiguous);
  at::Tensor db = at::empty_like(b, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "adv_loss_bwd_cpu", [&] {
    const scalar_t* gp = grad_loss.const_data_ptr<scalar_t>();
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    const int64_t* yp = labels.const_data_ptr<int64_t>();
    scalar_t* dap = da.mutable_data_ptr<scalar_t>();
    scalar_t* dbp = db.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, row_grain(K), [&](int64_t r0, int64_t r1) {
      bwd_rows<scalar_t>(gp, ap, bp, yp, dap, dbp, r0, r1, K, k, beta);
    });
  });
  return {da, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_adv_loss_cpp", &adv_loss_fwd_cpu);
  m.impl("_adv_loss_backward_cpp", &adv_loss_bwd_cpu);
}
