// CPU kernels of robustfast::robust_loss_fwd / robust_loss_bwd: every loss of the normalized-loss / Active Passive
// Loss family (robustfast.reference.robust_loss) in a few sweeps over each row of the logits.
//
// Per row z (K logits, label y), with m = max z, ℓ_k = z_k − lse, p_k = e^{ℓ_k}, A = −ln 1e−4, and the reference's
// clamp of p at 1e−7 taken in log space: k is "clamped" where ℓ_k < ln 1e−7, and then p̃_k = e^{ln 1e−7}:
//   sweep 1  m (a plain max: cheaper than an online max, which pays a second exp per element to rescale);
//   sweep 2  s = Σ e^{z_k−m}, split as (count of k with z_k = m) + Σ over the others, so that ln s = log1p(rest)
//            and 1 − p_y = Σ_{k≠y} e^{z_k−m}/s stay accurate for confident rows; Σ (z_k − m) when NCE needs
//            S = Σ ℓ_k (a sum of non-positive terms). It keeps e^{z_k−m} in a per-thread row buffer, so that the
//            later sweeps take p_k = e^{z_k−m}/s without another exp;
//   sweep 3  (RCE/NRCE, NGCE, NFL only: their terms need lse first) over k ≠ y: Σ p_k unclamped, Σ p_k clamped and
//            the clamped count (RCE's value and gradient, each from a direct sum); Σ_k p_k^q unclamped (NGCE);
//            D_F = −Σ_k w_k ℓ_k, W = Σ_k w_k and U = Σ_k u_k (NFL; w_k = (1−p_k)^γ, u_k = p_k w_k ℓ_k/(1−p_k));
//   forward  the loss from these scalars; backward recomputes them and writes the gradient in one more sweep as
//            grad_j = p_j·(clamped ? Pn : Pm) + C + [unclamped]·Q·p_j^q for j ≠ y, and grad_y from scalars,
//            with per-row coefficients Pm, Pn, C, Q gathered from every term of the kind (see row_coefs).
// FL's factor (1−p_y)^γ is detached in the backward unless detach_focal_factor is false (the reference's switch).
// NFL (as the published code) detaches the factors (1−p_k)^γ of its normaliser D_F but not its ℓ_k; with
// detach_focal_factor false nothing is detached. Its gradient adds F_w·w_j + F_u·u_j per element (write sweep).
// Arithmetic is in the opmath type (float; double for double logits). Rows are spread over threads with
// at::parallel_for; each sweep reads the row (in L1/L2 after the first) in chunks of 8 floats. The float sweeps
// use 8-wide GCC vector extensions with a polynomial exp/log (Cephes, 1–2 ulp), compiled twice: for AVX2+FMA
// (chosen at run time when the CPU has them) and for the baseline ISA. Double runs one lane with libm.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#include "../robust_loss_checks.h"
#include "simd.h"

namespace {

using robustfast::RobustLossKind;
using namespace robustfast::simd;

constexpr double kProbClamp = 1e-7;   // softmax clamp of RCE, GCE, NGCE: ℓ clamped below at ln 1e-7 (LOG_P_MIN)
constexpr double kLabelClamp = 1e-4;  // RCE's clamp of the one-hot label: A = -ln(1e-4)


// One row of the logits: its K elements at z, label y; `avail` elements from z to the end of the tensor, so a
// chunk that runs past the row's end may still be loaded whole (and masked) when the tensor goes on.
template <typename S>
struct Row {
  const S* z;
  int64_t K;
  int64_t avail;
  int64_t y;
};

// Loads the chunk of W elements at i (a padded partial chunk at the end of the row, `fill` in the missing lanes)
// and the mask of the lanes that hold elements.
template <typename Simd, typename S>
RL_INLINE typename Simd::V load_chunk(const Row<S>& row, int64_t i, typename Simd::T fill, typename Simd::M& valid) {
  if (row.K - i >= Simd::W) {
    valid = Simd::all_true();
    return Simd::template load<S>(row.z + i);
  }
  valid = Simd::lanes_below(row.K - i);
  if (row.avail - i >= Simd::W) return Simd::select(valid, Simd::template load<S>(row.z + i), Simd::splat(fill));
  return Simd::template load_partial<S>(row.z + i, row.K - i, fill);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-call parameters: the kind as weights on the basic terms.

template <typename T>
struct Params {
  int64_t B, K;
  T Kf;
  // Weights of the per-sample terms (0 where the kind lacks the term); a kind is α·active + β·passive, a single
  // active loss α·it, a single passive one β·it (reference COMPONENTS):
  //   ce = −ℓ_y;  fl = (1−p_y)^γ·ce;  mae = 1 − p_y;  rce = A·Σ_{k≠y} p̃_k;  gce = (1 − p̃_y^q)/q;
  //   nce = ℓ_y / Σ_k ℓ_k;  nfl = fl / D_F;  ngce = (1 − p̃_y^q)/(K − Σ_k p̃_k^q);
  //   nmae = mae/(2(K−1));  nrce = rce/(A(K−1)) = Σ_{k≠y} p̃_k/(K−1).
  T w_ce = 0, w_fl = 0, w_mae = 0, w_rce = 0, w_gce = 0, w_nce = 0, w_nfl = 0, w_ngce = 0;
  T gamma, q;
  T log_thr;  // ln 1e-7 in T: ℓ_k < log_thr is clamped
  T thr;      // e^{log_thr}: p̃ of a clamped k
  T thr_q;    // e^{q·log_thr}: p̃^q of a clamped k
  T A;        // -ln 1e-4
  bool sum_z;    // sweep 2 also sums z − m (NCE)
  bool clamps;   // sweep 3 runs (RCE, NGCE, NFL)
  bool pow_q;    // sweep 3 and the gradient sweep need p^q (NGCE)
  bool focal;    // sweep 3 sums D_F (NFL)
  bool focal_grad = false;  // differentiate FL's factor (1 − p_y)^γ (detach_focal_factor = false)
};

template <typename T>
Params<T> make_params(RobustLossKind kind, int64_t B, int64_t K, double alpha, double beta, double gamma, double q) {
  Params<T> P;
  P.B = B;
  P.K = K;
  P.Kf = static_cast<T>(K);
  P.gamma = static_cast<T>(gamma);
  P.q = static_cast<T>(q);
  P.log_thr = static_cast<T>(std::log(kProbClamp));
  P.thr = std::exp(P.log_thr);
  P.thr_q = std::exp(P.q * P.log_thr);
  P.A = static_cast<T>(-std::log(kLabelClamp));
  const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
  switch (kind) {
    case RobustLossKind::CE: P.w_ce = a; break;
    case RobustLossKind::FL: P.w_fl = a; break;
    case RobustLossKind::MAE: P.w_mae = b; break;
    case RobustLossKind::RCE: P.w_rce = b; break;
    case RobustLossKind::GCE: P.w_gce = a; break;
    case RobustLossKind::SCE: P.w_ce = a; P.w_rce = b; break;
    case RobustLossKind::NCE: P.w_nce = a; break;
    case RobustLossKind::NFL: P.w_nfl = a; break;
    case RobustLossKind::NGCE: P.w_ngce = a; break;
    case RobustLossKind::NMAE: P.w_mae = b / (T(2) * static_cast<T>(K - 1)); break;
    case RobustLossKind::NRCE: P.w_rce = b / (P.A * static_cast<T>(K - 1)); break;
    case RobustLossKind::NCE_RCE: P.w_nce = a; P.w_rce = b; break;
    case RobustLossKind::NCE_MAE: P.w_nce = a; P.w_mae = b; break;
    case RobustLossKind::NFL_RCE: P.w_nfl = a; P.w_rce = b; break;
    case RobustLossKind::NFL_MAE: P.w_nfl = a; P.w_mae = b; break;
    case RobustLossKind::NGCE_RCE: P.w_ngce = a; P.w_rce = b; break;
    case RobustLossKind::NGCE_MAE: P.w_ngce = a; P.w_mae = b; break;
  }
  P.sum_z = P.w_nce != 0;
  P.pow_q = P.w_ngce != 0;
  P.focal = P.w_nfl != 0;
  P.clamps = P.w_rce != 0 || P.pow_q || P.focal;
  return P;
}

// ---------------------------------------------------------------------------------------------------------------
// Row statistics, shared by forward and backward.

template <typename T>
struct RowStats {
  T m = 0;        // max z
  T logs = 0;     // ln s, s = Σ e^{z_k − m}, so ℓ_k = (z_k − m) − logs
  T inv_s = 0;    // 1/s, so p_k = e^{z_k − m}/s
  T py = 0;       // p_y
  T omp = 0;      // 1 − p_y = Σ_{k≠y} p_k
  T sum_zm = 0;   // Σ (z_k − m)                       [sum_z]
  T hi_sum = 0;   // Σ_{k≠y, unclamped} p_k           [clamps]
  T low_sum = 0;  // Σ_{k≠y, clamped} p_k             [clamps]
  T low_cnt = 0;  // #{k≠y : clamped}                 [clamps]
  T pq_sum = 0;   // Σ_{k unclamped} p_k^q             [pow_q]
  T d_f = 0;      // −Σ (1 − p_k)^γ ℓ_k                  [focal]
  T w_sum = 0;    // W = Σ w_k, w_k = (1 − p_k)^γ         [focal]
  T u_sum = 0;    // U = Σ u_k, u_k = p_k w_k ℓ_k/(1 − p_k) [focal]
  T zy = 0;       // z_y
};

template <typename Simd, typename S>
RL_INLINE typename Simd::T row_max(const Row<S>& row) {
  using V = typename Simd::V;
  using T = typename Simd::T;
  const T lowest = -std::numeric_limits<T>::infinity();
  V mx = Simd::splat(lowest);
  typename Simd::M valid;
  for (int64_t i = 0; i < row.K; i += Simd::W) mx = Simd::vmax(mx, load_chunk<Simd>(row, i, lowest, valid));
  return Simd::hmax(mx);
}

// Sweep 2: ln s = ln Σ e^{z_k − m} with the t maxima counted apart (exactly 1 each) from the rest r, and
// Σ (z_k − m) when asked; stores e^{z_k − m} in ebuf (K rounded up to a whole number of chunks). Then
// 1 − p_y = Σ_{k≠y} e^{z_k − m} / s without cancellation: (t − 1) + r where y is a maximum, else s − e^{z_y − m},
// where s ≥ 1 + e^{z_y − m}.
template <typename Simd, bool kSumZ, typename S>
RL_INLINE void row_expsum(const Row<S>& row, RowStats<typename Simd::T>& st, typename Simd::T* ebuf) {
  using V = typename Simd::V;
  using M = typename Simd::M;
  using T = typename Simd::T;
  const V m = Simd::splat(st.m), zero = Simd::splat(T(0)), one = Simd::splat(T(1));
  V rest = zero, ties = zero, dsum = zero;
  M valid;
  for (int64_t i = 0; i < row.K; i += Simd::W) {
    const V d = load_chunk<Simd>(row, i, st.m, valid) - m;  // padding lanes: d = 0, masked below
    const V e = Simd::exp(d);
    Simd::template store<T>(ebuf + i, e);
    const M top = (d == zero) & valid;
    rest += Simd::select(top | Simd::mnot(valid), zero, e);
    ties += Simd::select(top, one, zero);
    if constexpr (kSumZ) dsum += d;
  }
  const T r = Simd::hsum(rest), t = Simd::hsum(ties), s = t + r;
  st.logs = t == T(1) ? std::log1p(r) : std::log(s);
  st.inv_s = T(1) / s;
  const T ey = ebuf[row.y];
  const bool y_top = static_cast<T>(row.z[row.y]) == st.m;  // y among the maxima (its d is 0: counted in t)
  st.omp = (y_top ? (t - T(1)) + r : s - ey) * st.inv_s;
  st.py = ey * st.inv_s;
  if constexpr (kSumZ) st.sum_zm = Simd::hsum(dsum);
}

// Sweep 3: the clamp statistics, Σ p^q and D_F, which need lse.
template <typename Simd, bool kPowQ, bool kFocal, typename S>
RL_INLINE void row_clamp_stats(const Row<S>& row, const typename Simd::T* ebuf, const Params<typename Simd::T>& P,
                               RowStats<typename Simd::T>& st) {
  using V = typename Simd::V;
  using M = typename Simd::M;
  using T = typename Simd::T;
  const V m = Simd::splat(st.m), logs = Simd::splat(st.logs), zero = Simd::splat(T(0)), one = Simd::splat(T(1));
  const V inv_s = Simd::splat(st.inv_s);
  const V log_thr = Simd::splat(P.log_thr), q = Simd::splat(P.q), gamma = Simd::splat(P.gamma);
  V hi_sum = zero, low_sum = zero, low_cnt = zero, pq_sum = zero, d_f = zero, w_sum = zero, u_sum = zero;
  const V w_at_one = Simd::splat(P.gamma == T(0) ? T(1) : T(0));  // (1 − p)^γ at p = 1, as torch.pow
  M valid;
  for (int64_t i = 0; i < row.K; i += Simd::W) {
    const V l = (load_chunk<Simd>(row, i, st.m, valid) - m) - logs;
    const V p = Simd::template load<T>(ebuf + i) * inv_s;
    const M low = l < log_thr;
    const M other = valid & Simd::mnot(Simd::lane_is(i, row.y));  // k ≠ y
    hi_sum += Simd::select(other & Simd::mnot(low), p, zero);
    low_sum += Simd::select(other & low, p, zero);
    low_cnt += Simd::select(other & low, one, zero);
    if constexpr (kPowQ) pq_sum += Simd::select(valid & Simd::mnot(low), Simd::exp(q * l), zero);
    if constexpr (kFocal) {
      const V omp = one - p;
      const M pos = (omp > zero) & valid;
      const V f = Simd::exp(gamma * Simd::log(Simd::select(pos, omp, one)));
      d_f -= Simd::select(pos, f * l, zero);  // (1 − p)^γ = 0 where p = 1 (γ > 0), and then ℓ = 0 anyway
      const V w = Simd::select(pos, f, w_at_one);
      w_sum += Simd::select(valid, w, zero);
      u_sum += Simd::select(valid, p * w * Simd::select(pos, l / Simd::select(pos, omp, one), -one), zero);
    }
  }
  st.hi_sum = Simd::hsum(hi_sum);
  st.low_sum = Simd::hsum(low_sum);
  st.low_cnt = Simd::hsum(low_cnt);
  if constexpr (kPowQ) st.pq_sum = Simd::hsum(pq_sum);
  if constexpr (kFocal) {
    st.d_f = Simd::hsum(d_f);
    st.w_sum = Simd::hsum(w_sum);
    st.u_sum = Simd::hsum(u_sum);
  }
}

template <typename Simd, typename S>
RL_INLINE RowStats<typename Simd::T> row_stats(const Row<S>& row, const Params<typename Simd::T>& P,
                                               typename Simd::T* ebuf) {
  using T = typename Simd::T;
  RowStats<T> st;
  st.m = row_max<Simd>(row);
  if (P.sum_z) {
    row_expsum<Simd, true>(row, st, ebuf);
  } else {
    row_expsum<Simd, false>(row, st, ebuf);
  }
  if (P.clamps) {
    if (P.pow_q) {
      if (P.focal) row_clamp_stats<Simd, true, true>(row, ebuf, P, st);
      else row_clamp_stats<Simd, true, false>(row, ebuf, P, st);
    } else {
      if (P.focal) row_clamp_stats<Simd, false, true>(row, ebuf, P, st);
      else row_clamp_stats<Simd, false, false>(row, ebuf, P, st);
    }
  }
  st.zy = static_cast<T>(row.z[row.y]);
  return st;
}

// Scalars of a row derived from its statistics, used by the loss and by the gradient.
template <typename T>
struct RowTerms {
  T ly;        // ℓ_y
  T py;        // p_y
  T omp;       // 1 − p_y, accurate also for p_y near 1
  bool y_in;   // ℓ_y ≥ ln 1e-7: the clamps at y are inactive
  T py_q;      // p̃_y^q
  T gce_num;   // 1 − p̃_y^q
  T S;         // Σ_k ℓ_k                       (NCE)
  T Dn;        // K − Σ_k p̃_k^q                 (NGCE)
  T focal_w;   // (1 − p_y)^γ                   (FL, NFL)
};

template <typename Simd>
RL_INLINE RowTerms<typename Simd::T> row_terms(const RowStats<typename Simd::T>& st,
                                               const Params<typename Simd::T>& P) {
  using T = typename Simd::T;
  RowTerms<T> t;
  t.ly = (st.zy - st.m) - st.logs;
  t.py = st.py;
  t.omp = st.omp;
  t.y_in = t.ly >= P.log_thr;
  t.py_q = t.gce_num = 0;
  if (P.w_gce != 0 || P.w_ngce != 0) {
    const T lq = P.q * (t.y_in ? t.ly : P.log_thr);
    if (lq > T(-0.5)) {
      t.gce_num = -std::expm1(lq);
      t.py_q = T(1) - t.gce_num;
    } else {
      t.py_q = std::exp(lq);
      t.gce_num = T(1) - t.py_q;
    }
  }
  t.S = st.sum_zm - P.Kf * st.logs;
  t.Dn = P.Kf - (st.pq_sum + (st.low_cnt + (t.y_in ? T(0) : T(1))) * P.thr_q);
  t.focal_w = 0;
  if (P.w_fl != 0 || P.w_nfl != 0) {
    // (1 − p_y)^γ, as torch.pow (0^0 = 1); the usual γ without a libm pow
    t.focal_w = P.gamma == T(0.5)   ? std::sqrt(t.omp)
                : P.gamma == T(0)   ? T(1)
                : P.gamma == T(1)   ? t.omp
                : P.gamma == T(2)   ? t.omp * t.omp
                                    : std::pow(t.omp, P.gamma);
  }
  return t;
}

template <typename Simd>
RL_INLINE typename Simd::T row_loss(const RowStats<typename Simd::T>& st, const Params<typename Simd::T>& P) {
  using T = typename Simd::T;
  const RowTerms<T> t = row_terms<Simd>(st, P);
  const T ce = -t.ly;
  T loss = 0;
  if (P.w_ce != 0) loss += P.w_ce * ce;
  if (P.w_fl != 0) loss += P.w_fl * (t.focal_w * ce);
  if (P.w_mae != 0) loss += P.w_mae * t.omp;
  if (P.w_rce != 0) loss += P.w_rce * (P.A * (st.hi_sum + st.low_cnt * P.thr));  // A·Σ_{k≠y} p̃_k
  if (P.w_gce != 0) loss += P.w_gce * (t.gce_num / P.q);
  if (P.w_nce != 0) loss += P.w_nce * (t.ly / t.S);
  if (P.w_nfl != 0) loss += P.w_nfl * (t.focal_w * ce / st.d_f);
  if (P.w_ngce != 0) loss += P.w_ngce * (t.gce_num / t.Dn);
  return loss;
}

// Gradient of a row, scaled by g = grad_loss[row]:
//   j ≠ y:  p_j·(clamped ? Pn : Pm) + C + [unclamped]·Q·p_j^q + Fw·w_j + Fu·u_j;   j = y: gy.
template <typename T>
struct RowCoefs {
  T Pm, Pn, C, Q, Fw = 0, Fu = 0, gy;
};

template <typename Simd>
RL_INLINE RowCoefs<typename Simd::T> row_coefs(const RowStats<typename Simd::T>& st,
                                               const Params<typename Simd::T>& P, typename Simd::T g) {
  using T = typename Simd::T;
  const RowTerms<T> t = row_terms<Simd>(st, P);
  T cpe = 0;     // coefficient of (p_j − e_j)
  T P_all = 0;   // coefficient of p_j, every j
  T C = 0;       // constant, every j
  T Q = 0;       // coefficient of [j unclamped]·p_j^q, every j
  T in_extra = 0, out_extra = 0;  // RCE: extra coefficient of p_j, j ≠ y, unclamped (in) or clamped (out)
  if (P.w_ce != 0) cpe += P.w_ce;
  // FL's c·(p − e): c = (1−p_y)^γ, times 1 − γ p_y ℓ_y/(1−p_y) (→ 1 + γ as p_y → 1) when the factor is not detached
  T focal_c = t.focal_w;
  if (P.focal_grad && focal_c != 0) focal_c *= 1 - P.gamma * t.py * (t.omp > 0 ? t.ly / t.omp : T(-1));
  if (P.w_fl != 0) cpe += P.w_fl * focal_c;
  if (P.w_mae != 0) cpe += P.w_mae * t.py;
  if (P.w_gce != 0 && t.y_in) cpe += P.w_gce * t.py_q;
  T Fw = 0, Fu = 0, gy_focal = 0;
  if (P.w_nfl != 0) {
    // N/D, N = −w_y ℓ_y, D = D_F: ∇N/D − (N/D²)∇D with ∂D/∂z_j = −w_j + p_j W (+ γ(u_j − p_j U) undetached)
    cpe += P.w_nfl * focal_c / st.d_f;
    const T R = P.w_nfl * (t.focal_w * -t.ly) / (st.d_f * st.d_f);
    Fw = R;
    P_all -= R * st.w_sum;
    gy_focal = R * t.focal_w;
    if (P.focal_grad) {
      Fu = -P.gamma * R;
      P_all += P.gamma * R * st.u_sum;
      gy_focal += Fu * (t.py * t.focal_w * (t.omp > 0 ? t.ly / t.omp : T(-1)));
    }
  }
  if (P.w_nce != 0) {
    // [(e_j − p_j)·S − ℓ_y·(1 − K p_j)] / S²
    const T n = -P.w_nce * t.ly / (t.S * t.S);
    cpe -= P.w_nce / t.S;
    C += n;
    P_all -= P.Kf * n;
  }
  if (P.w_ngce != 0) {
    // [q c_y p_y^q (p_j − e_j)·Dn + q N (c_j p_j^q − p_j Σ_{c_k} p_k^q)] / Dn², c_k = [k unclamped]
    if (t.y_in) cpe += P.w_ngce * P.q * t.py_q / t.Dn;
    Q = P.w_ngce * P.q * t.gce_num / (t.Dn * t.Dn);
    P_all -= Q * st.pq_sum;
  }
  if (P.w_rce != 0) {
    // A·p_j·([j≠y, unclamped] − Σ_{k≠y, unclamped} p_k), with 1 − Σ_{k≠y, unclamped} p_k = p_y + Σ_{k≠y, clamped} p_k
    const T wa = P.w_rce * P.A;
    in_extra = wa * (t.py + st.low_sum);
    out_extra = -wa * st.hi_sum;
  }
  RowCoefs<T> c;
  c.Pm = g * (cpe + P_all + in_extra);
  c.Pn = g * (cpe + P_all + out_extra);
  c.C = g * C;
  c.Q = g * Q;
  c.Fw = g * Fw;
  c.Fu = g * Fu;
  T gy = -cpe * t.omp + P_all * t.py + C + (t.y_in ? Q * t.py_q : T(0)) + gy_focal;
  if (P.w_rce != 0) gy -= P.w_rce * P.A * st.hi_sum * t.py;
  c.gy = g * gy;
  return c;
}

template <typename Simd, bool kPowQ, bool kFocal, typename S>
RL_INLINE void row_write_grad(const Row<S>& row, const typename Simd::T* ebuf, S* out,
                              const Params<typename Simd::T>& P,
                              const RowStats<typename Simd::T>& st, const RowCoefs<typename Simd::T>& c) {
  using V = typename Simd::V;
  using M = typename Simd::M;
  using T = typename Simd::T;
  const V m = Simd::splat(st.m), logs = Simd::splat(st.logs), zero = Simd::splat(T(0)), inv_s = Simd::splat(st.inv_s);
  const V log_thr = Simd::splat(P.log_thr), q = Simd::splat(P.q);
  const V Pm = Simd::splat(c.Pm), Pn = Simd::splat(c.Pn), C = Simd::splat(c.C), Q = Simd::splat(c.Q);
  const V one = Simd::splat(T(1)), gamma = Simd::splat(P.gamma), Fw = Simd::splat(c.Fw), Fu = Simd::splat(c.Fu);
  const V w_at_one = Simd::splat(P.gamma == T(0) ? T(1) : T(0));
  M valid;
  const int64_t K = row.K;
  for (int64_t i = 0; i < K; i += Simd::W) {
    const V l = (load_chunk<Simd>(row, i, st.m, valid) - m) - logs;
    const V p = Simd::template load<T>(ebuf + i) * inv_s;
    const M low = l < log_thr;
    V g = p * Simd::select(low, Pn, Pm) + C;
    if constexpr (kPowQ) g += Simd::select(low, zero, Q * Simd::exp(q * l));
    if constexpr (kFocal) {
      const V omp = one - p;
      const M pos = omp > zero;
      const V w = Simd::select(pos, Simd::exp(gamma * Simd::log(Simd::select(pos, omp, one))), w_at_one);
      g += Fw * w + Fu * (p * w * Simd::select(pos, l / Simd::select(pos, omp, one), -one));
    }
    if (K - i >= Simd::W) {
      Simd::template store<S>(out + i, g);
    } else {
      Simd::template store_partial<S>(out + i, g, K - i);
    }
  }
  out[row.y] = static_cast<S>(c.gy);
}

// ---------------------------------------------------------------------------------------------------------------
// Row ranges: the bodies, and their AVX2+FMA and baseline builds.

template <typename Simd, typename S>
RL_INLINE void fwd_rows_body(const S* z, const int64_t* labels, typename Simd::T* loss, int64_t b0, int64_t b1,
                             const Params<typename Simd::T>& P, typename Simd::T* ebuf) {
  const int64_t K = P.K;
  for (int64_t r = b0; r < b1; ++r) {
    const Row<S> row{z + r * K, K, (P.B - r) * K, labels[r]};
    loss[r] = row_loss<Simd>(row_stats<Simd>(row, P, ebuf), P);
  }
}

template <typename Simd, typename S>
RL_INLINE void bwd_rows_body(const typename Simd::T* grad_loss, const S* z, const int64_t* labels, S* grad,
                             int64_t b0, int64_t b1, const Params<typename Simd::T>& P,
                             typename Simd::T* ebuf) {
  const int64_t K = P.K;
  for (int64_t r = b0; r < b1; ++r) {
    const Row<S> row{z + r * K, K, (P.B - r) * K, labels[r]};
    const auto st = row_stats<Simd>(row, P, ebuf);
    const auto c = row_coefs<Simd>(st, P, grad_loss[r]);
    if (P.pow_q) {
      if (P.focal) row_write_grad<Simd, true, true>(row, ebuf, grad + r * K, P, st, c);
      else row_write_grad<Simd, true, false>(row, ebuf, grad + r * K, P, st, c);
    } else {
      if (P.focal) row_write_grad<Simd, false, true>(row, ebuf, grad + r * K, P, st, c);
      else row_write_grad<Simd, false, false>(row, ebuf, grad + r * K, P, st, c);
    }
  }
}

template <typename S>
void fwd_rows_generic(const S* z, const int64_t* labels, at::opmath_type<S>* loss, int64_t b0, int64_t b1,
                      const Params<at::opmath_type<S>>& P, at::opmath_type<S>* ebuf) {
  fwd_rows_body<SimdFor<at::opmath_type<S>>>(z, labels, loss, b0, b1, P, ebuf);
}

template <typename S>
void bwd_rows_generic(const at::opmath_type<S>* grad_loss, const S* z, const int64_t* labels, S* grad, int64_t b0,
                      int64_t b1, const Params<at::opmath_type<S>>& P, at::opmath_type<S>* ebuf) {
  bwd_rows_body<SimdFor<at::opmath_type<S>>>(grad_loss, z, labels, grad, b0, b1, P, ebuf);
}

// ROBUSTFAST_NO_AVX2_BUILD leaves the AVX2 build out (to test the baseline one on an AVX2 machine).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(ROBUSTFAST_NO_AVX2_BUILD)
#define RL_HAVE_AVX2_BUILD 1
template <typename S>
__attribute__((target("avx2,fma"))) void fwd_rows_avx2(const S* z, const int64_t* labels, float* loss, int64_t b0,
                                                        int64_t b1, const Params<float>& P, float* ebuf) {
  fwd_rows_body<SimdF>(z, labels, loss, b0, b1, P, ebuf);
}

template <typename S>
__attribute__((target("avx2,fma"))) void bwd_rows_avx2(const float* grad_loss, const S* z, const int64_t* labels,
                                                        S* grad, int64_t b0, int64_t b1, const Params<float>& P,
                                                        float* ebuf) {
  bwd_rows_body<SimdF>(grad_loss, z, labels, grad, b0, b1, P, ebuf);
}

#endif

// A row buffer for e^{z−m}: K rounded up to whole chunks.
template <typename T>
std::unique_ptr<T[]> row_buffer(int64_t K) {
  constexpr int64_t W = SimdFor<T>::W;
  return std::unique_ptr<T[]>(new T[(K + W - 1) / W * W]);
}

// The AVX2+FMA build of the float sweeps where the CPU has it, else the baseline one (and always for double).
template <typename S>
void fwd_rows(const S* z, const int64_t* labels, at::opmath_type<S>* loss, int64_t b0, int64_t b1,
              const Params<at::opmath_type<S>>& P) {
  const auto ebuf = row_buffer<at::opmath_type<S>>(P.K);
#ifdef RL_HAVE_AVX2_BUILD
  if constexpr (std::is_same_v<at::opmath_type<S>, float>) {
    if (cpu_has_avx2_fma()) return fwd_rows_avx2<S>(z, labels, loss, b0, b1, P, ebuf.get());
  }
#endif
  fwd_rows_generic<S>(z, labels, loss, b0, b1, P, ebuf.get());
}

template <typename S>
void bwd_rows(const at::opmath_type<S>* grad_loss, const S* z, const int64_t* labels, S* grad, int64_t b0,
              int64_t b1, const Params<at::opmath_type<S>>& P) {
  const auto ebuf = row_buffer<at::opmath_type<S>>(P.K);
#ifdef RL_HAVE_AVX2_BUILD
  if constexpr (std::is_same_v<at::opmath_type<S>, float>) {
    if (cpu_has_avx2_fma()) return bwd_rows_avx2<S>(grad_loss, z, labels, grad, b0, b1, P, ebuf.get());
  }
#endif
  bwd_rows_generic<S>(grad_loss, z, labels, grad, b0, b1, P, ebuf.get());
}

// Labels must lie in [0, K): checked once, before the sweeps index with them.
void check_labels(const int64_t* labels, int64_t B, int64_t K, const char* op) {
  int64_t bad = -1;
  for (int64_t r = 0; r < B; ++r) {
    if (labels[r] < 0 || labels[r] >= K) {
      bad = r;
      break;
    }
  }
  TORCH_CHECK(bad < 0, op, ": labels must lie in [0, ", K, "), got ", bad < 0 ? 0 : labels[bad], " at index ", bad);
}

int64_t row_grain(int64_t K) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / (4 * K)); }

// detach_focal_factor changes only the gradient; the forward takes it to share the op's one schema.
at::Tensor robust_loss_fwd_cpu(const at::Tensor& logits, const at::Tensor& labels, c10::string_view kind,
                               double alpha, double beta, double gamma, double q, bool /*detach_focal_factor*/) {
  const RobustLossKind k = robustfast::check_robust_loss_args("robust_loss_fwd", logits, labels, kind, alpha, beta,
                                                              gamma, q, c10::DeviceType::CPU);
  const int64_t B = logits.size(0), K = logits.size(1);
  at::Tensor loss = at::empty({B}, logits.options().dtype(robustfast::opmath_dtype(logits.scalar_type())));
  if (B == 0) return loss;
  const int64_t* lab = labels.const_data_ptr<int64_t>();
  check_labels(lab, B, K, "robust_loss_fwd");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "robust_loss_fwd_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const Params<opmath_t> P = make_params<opmath_t>(k, B, K, alpha, beta, gamma, q);
    const scalar_t* z = logits.const_data_ptr<scalar_t>();
    opmath_t* out = loss.mutable_data_ptr<opmath_t>();
    at::parallel_for(0, B, row_grain(K),
                     [&](int64_t b0, int64_t b1) { fwd_rows<scalar_t>(z, lab, out, b0, b1, P); });
  });
  return loss;
}

at::Tensor robust_loss_bwd_cpu(const at::Tensor& grad_loss, const at::Tensor& logits, const at::Tensor& labels,
                               c10::string_view kind, double alpha, double beta, double gamma, double q,
                               bool detach_focal_factor) {
  const RobustLossKind k = robustfast::check_robust_loss_bwd_args(grad_loss, logits, labels, kind, alpha, beta, gamma,
                                                                  q, c10::DeviceType::CPU);
  const int64_t B = logits.size(0), K = logits.size(1);
  at::Tensor grad = at::empty_like(logits, at::MemoryFormat::Contiguous);
  if (B == 0) return grad;
  const int64_t* lab = labels.const_data_ptr<int64_t>();
  check_labels(lab, B, K, "robust_loss_bwd");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "robust_loss_bwd_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    Params<opmath_t> P = make_params<opmath_t>(k, B, K, alpha, beta, gamma, q);
    P.focal_grad = !detach_focal_factor;
    const scalar_t* z = logits.const_data_ptr<scalar_t>();
    const opmath_t* gl = grad_loss.const_data_ptr<opmath_t>();
    scalar_t* out = grad.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, row_grain(K),
                     [&](int64_t b0, int64_t b1) { bwd_rows<scalar_t>(gl, z, lab, out, b0, b1, P); });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_robust_loss_cpp", &robust_loss_fwd_cpu);
  m.impl("_robust_loss_backward_cpp", &robust_loss_bwd_cpu);
}
