// CPU kernel of robustfast::knn_lid: each query's k nearest reference rows and the LID estimates from them
// (robustfast.reference.knn_lid is the definition), in bounded memory.
//
//   for each block of kQueryBlock queries:
//     for each block of kRefBlock reference rows:
//       dot = Q_blk · R_blkᵀ (at::mm: a multi-threaded GEMM, in the data's dtype: no reduced precision on CPU)
//       per query row (at::parallel_for): d² = ‖q‖² + ‖r‖² − 2 q·r, tested 16 at a time against the row's
//       threshold (the largest kept d²) and inserted into a sorted top-kmax list; the query's own row
//       (self_offset + i) is skipped by index
//     per query row: exact distances ‖q − r_j‖ by differences for the kmax kept rows (the GEMM form leaves
//     residues of ~1e−7‖q‖² that would make duplicates look apart), sorted by (distance, index), then every
//     requested estimator and k from the same buffer.
// Memory: one kQueryBlock × kRefBlock tile and kmax entries per query, never M × N.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "../knn_lid_checks.h"

namespace {

using robustfast::LidForm;

constexpr int64_t kQueryBlock = 1024;
constexpr int64_t kRefBlock = 2048;
constexpr int64_t kLanes = 16;  // candidates tested per threshold check

// The kmax smallest (d², index) pairs seen so far for one query, ascending; `top` is the threshold.
template <typename T>
struct TopK {
  T* d2;
  int64_t* idx;
  int64_t size;
  int64_t cap;

  T top() const { return size < cap ? std::numeric_limits<T>::infinity() : d2[cap - 1]; }

  void insert(T v, int64_t j) {
    int64_t pos = size < cap ? size++ : cap - 1;
    while (pos > 0 && (d2[pos - 1] > v || (d2[pos - 1] == v && idx[pos - 1] > j))) {
      d2[pos] = d2[pos - 1];
      idx[pos] = idx[pos - 1];
      --pos;
    }
    d2[pos] = v;
    idx[pos] = j;
  }
};

// Offers reference rows [col0, col0 + n) to one query's list. dot: that query's row of the tile.
template <typename T>
void offer_tile(TopK<T>& list, const T* dot, const T* rnorm, T qnorm, int64_t col0, int64_t n, int64_t self) {
  T d2[kLanes];
  for (int64_t c = 0; c < n; c += kLanes) {
    const int64_t len = std::min(kLanes, n - c);
    const T thr = list.top();
    bool any = false;
    for (int64_t l = 0; l < len; ++l) {
      d2[l] = std::max(qnorm + rnorm[c + l] - T(2) * dot[c + l], T(0));
      any |= d2[l] < thr;
    }
    if (!any) continue;
    for (int64_t l = 0; l < len; ++l) {
      const int64_t j = col0 + c + l;
      if (d2[l] < list.top() && j != self) list.insert(d2[l], j);
    }
  }
}

// Sorted exact distances of one query to its `found` kept rows, then the estimators (one per k) into mle / mom.
// found < kmax only when NaN distances were never kept: the missing entries read as NaN (index 0), and the op
// reports the NaN input.
template <typename T>
void finish_row(const T* q, const T* R, int64_t D, const int64_t* kept, int64_t found, int64_t kmax,
                at::IntArrayRef ks, LidForm form, T* dist, int64_t* idx, T* mle, T* mom,
                std::vector<std::pair<T, int64_t>>& buf) {
  buf.clear();
  for (int64_t j = 0; j < found; ++j) {
    const T* r = R + kept[j] * D;
    T s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const T diff = q[d] - r[d];
      s += diff * diff;
    }
    buf.emplace_back(std::sqrt(s), kept[j]);
  }
  std::sort(buf.begin(), buf.end());
  while (static_cast<int64_t>(buf.size()) < kmax) buf.emplace_back(std::numeric_limits<T>::quiet_NaN(), 0);
  for (int64_t j = 0; j < kmax; ++j) {
    dist[j] = buf[j].first;
    idx[j] = buf[j].second;
  }
  for (size_t t = 0; t < ks.size(); ++t) {
    const int64_t k = ks[t];
    const T w = dist[k - 1];
    T logs = 0, sum = 0;
    if (form == LidForm::LDREG) {
      for (int64_t j = 0; j < k - 1; ++j) {
        logs += std::log(dist[j] / w + T(robustfast::kLidLdregLogEps));
        sum += dist[j];
      }
      mle[t] = -T(k) / logs;
      const T m = sum / T(k - 1);
      mom[t] = m / (w - m);
    } else {
      const int64_t terms = form == LidForm::LITERATURE ? k : k - 1;
      const T floor = T(robustfast::kLidMinRatio) * w;
      for (int64_t j = 0; j < terms; ++j) logs += std::log(std::max(dist[j], floor) / w);
      for (int64_t j = 0; j < k; ++j) sum += dist[j];
      mle[t] = -T(terms) / logs;
      const T mu = sum / T(k);
      mom[t] = mu / (w - mu);
    }
  }
}

template <typename T>
void knn_lid_kernel(const at::Tensor& Q, const at::Tensor& R, at::IntArrayRef ks, LidForm form, int64_t self_offset,
                    at::Tensor& dist, at::Tensor& idx, at::Tensor& mle, at::Tensor& mom) {
  const int64_t M = Q.size(0), N = R.size(0), D = Q.size(1);
  const int64_t kmax = dist.size(1), nk = static_cast<int64_t>(ks.size());
  const at::Tensor qnorm = Q.mul(Q).sum(1);
  const at::Tensor rnorm = R.mul(R).sum(1);
  const T* qn = qnorm.const_data_ptr<T>();
  const T* rn = rnorm.const_data_ptr<T>();
  const T* qp = Q.const_data_ptr<T>();
  const T* rp = R.const_data_ptr<T>();
  std::vector<T> keep_d2(std::min(M, kQueryBlock) * kmax);
  std::vector<int64_t> keep_idx(keep_d2.size());
  for (int64_t q0 = 0; q0 < M; q0 += kQueryBlock) {
    const int64_t mq = std::min(kQueryBlock, M - q0);
    std::vector<int64_t> sizes(mq, 0);
    const at::Tensor qblk = Q.narrow(0, q0, mq);
    for (int64_t r0 = 0; r0 < N; r0 += kRefBlock) {
      const int64_t nr = std::min(kRefBlock, N - r0);
      const at::Tensor dot = at::mm(qblk, R.narrow(0, r0, nr).t());
      const T* dp = dot.const_data_ptr<T>();
      at::parallel_for(0, mq, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          TopK<T> list{keep_d2.data() + i * kmax, keep_idx.data() + i * kmax, sizes[i], kmax};
          const int64_t self = self_offset >= 0 ? self_offset + q0 + i : -1;
          offer_tile(list, dp + i * nr, rn + r0, qn[q0 + i], r0, nr, self);
          sizes[i] = list.size;
        }
      });
    }
    at::parallel_for(0, mq, 16, [&](int64_t b, int64_t e) {
      std::vector<std::pair<T, int64_t>> buf;
      buf.reserve(kmax);
      for (int64_t i = b; i < e; ++i) {
        const int64_t row = q0 + i;
        finish_row<T>(qp + row * D, rp, D, keep_idx.data() + i * kmax, sizes[i], kmax, ks, form,
                      dist.mutable_data_ptr<T>() + row * kmax, idx.mutable_data_ptr<int64_t>() + row * kmax,
                      mle.mutable_data_ptr<T>() + row * nk, mom.mutable_data_ptr<T>() + row * nk, buf);
      }
    });
  }
}

// grad_q[i] = Σ_j g_ij (q_i − x_j)/r_ij over the kept neighbours j = idx[i, :]; a zero distance passes nothing.
// With grad_r, neighbour x_j also gets −g_ij (q_i − x_j)/r_ij, accumulated serially (rows share neighbours).
template <typename T>
void knn_lid_backward_kernel(const at::Tensor& Q, const at::Tensor& R, const at::Tensor& dist, const at::Tensor& idx,
                             const at::Tensor& grad, at::Tensor& grad_q, at::Tensor* grad_r) {
  const int64_t M = Q.size(0), D = Q.size(1), kmax = dist.size(1);
  const T* qp = Q.const_data_ptr<T>();
  const T* rp = R.const_data_ptr<T>();
  const T* dp = dist.const_data_ptr<T>();
  const T* gp = grad.const_data_ptr<T>();
  const int64_t* ip = idx.const_data_ptr<int64_t>();
  T* gq = grad_q.mutable_data_ptr<T>();
  auto coef = [&](int64_t i, int64_t j) { return dp[i * kmax + j] > T(0) ? gp[i * kmax + j] / dp[i * kmax + j] : T(0); };
  at::parallel_for(0, M, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T* out = gq + i * D;
      std::fill(out, out + D, T(0));
      for (int64_t j = 0; j < kmax; ++j) {
        const T c = coef(i, j);
        const T* q = qp + i * D;
        const T* r = rp + ip[i * kmax + j] * D;
        for (int64_t d = 0; d < D; ++d) out[d] += c * (q[d] - r[d]);
      }
    }
  });
  if (grad_r == nullptr) return;
  T* gr = grad_r->mutable_data_ptr<T>();
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < kmax; ++j) {
      const T c = coef(i, j);
      const T* q = qp + i * D;
      const int64_t row = ip[i * kmax + j];
      const T* r = rp + row * D;
      T* out = gr + row * D;
      for (int64_t d = 0; d < D; ++d) out[d] -= c * (q[d] - r[d]);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> knn_lid_backward_cpu(const at::Tensor& queries, const at::Tensor& reference,
                                                        const at::Tensor& distances, const at::Tensor& indices,
                                                        const at::Tensor& grad_distances, bool reference_grad) {
  TORCH_CHECK(queries.device().is_cpu() && reference.device() == queries.device(),
              "knn_lid_backward (CPU kernel): queries and reference must be CPU tensors");
  TORCH_CHECK(queries.dim() == 2 && reference.dim() == 2 && queries.size(1) == reference.size(1),
              "knn_lid_backward: queries (M, D) and reference (N, D) must share D, got ", queries.sizes(), " and ",
              reference.sizes());
  const auto dtype = queries.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "knn_lid_backward: queries must be float32 or float64");
  const int64_t M = queries.size(0), N = reference.size(0);
  TORCH_CHECK(distances.dim() == 2 && distances.size(0) == M, "knn_lid_backward: distances must be (M, kmax), got ",
              distances.sizes());
  TORCH_CHECK(indices.sizes() == distances.sizes() && grad_distances.sizes() == distances.sizes(),
              "knn_lid_backward: indices and grad_distances must have the shape of distances ", distances.sizes());
  TORCH_CHECK(indices.scalar_type() == at::kLong, "knn_lid_backward: indices must be int64");
  for (const auto* t : {&reference, &distances, &grad_distances}) {
    TORCH_CHECK(t->scalar_type() == dtype, "knn_lid_backward: every float input must have queries' dtype");
  }
  for (const auto* t : {&queries, &reference, &distances, &indices, &grad_distances}) {
    TORCH_CHECK(t->is_contiguous(), "knn_lid_backward: inputs must be contiguous (call .contiguous())");
  }
  if (indices.numel() > 0) {
    const auto [lo, hi] = at::aminmax(indices);
    TORCH_CHECK(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < N, "knn_lid_backward: indices must lie in [0, ", N,
                ")");
  }
  at::Tensor grad_q = at::empty_like(queries);
  at::Tensor grad_r = reference_grad ? at::zeros_like(reference) : at::empty({0, reference.size(1)}, reference.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "knn_lid_backward_cpu", [&] {
    knn_lid_backward_kernel<scalar_t>(queries, reference, distances, indices, grad_distances, grad_q,
                                      reference_grad ? &grad_r : nullptr);
  });
  return {grad_q, grad_r};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> knn_lid_cpu(const at::Tensor& queries,
                                                                       const at::Tensor& reference,
                                                                       at::IntArrayRef ks, c10::string_view form,
                                                                       int64_t self_offset) {
  const LidForm f = robustfast::check_knn_lid_args(queries, reference, ks, form, self_offset, c10::DeviceType::CPU);
  const int64_t M = queries.size(0);
  const int64_t kmax = *std::max_element(ks.begin(), ks.end());
  const auto opts = queries.options();
  at::Tensor dist = at::empty({M, kmax}, opts);
  at::Tensor idx = at::empty({M, kmax}, opts.dtype(at::kLong));
  at::Tensor mle = at::empty({M, static_cast<int64_t>(ks.size())}, opts);
  at::Tensor mom = at::empty_like(mle);
  if (M == 0) return {dist, idx, mle, mom};
  AT_DISPATCH_FLOATING_TYPES(queries.scalar_type(), "knn_lid_cpu", [&] {
    knn_lid_kernel<scalar_t>(queries, reference, ks, f, self_offset, dist, idx, mle, mom);
  });
  return {dist, idx, mle, mom};
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("_knn_lid_cpp", &knn_lid_cpu);
  m.impl("_knn_lid_backward_cpp", &knn_lid_backward_cpu);
}
