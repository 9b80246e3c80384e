// CUDA kernels of robustfast::pgd_step (see pgd_step.cuh for the contract). Raw pointers only, no torch:
// `nvcc -arch=sm_90 -O3 -std=c++17 -c csrc/cuda/pgd_step.cu` builds this file alone.
//
// Linf is elementwise: a grid-stride loop over 16-byte packs (128-bit loads and stores when every pointer is
// 16-byte aligned), the row of each pack tracked incrementally rather than divided out per element.
// L2 needs two row reductions (||g||, then ||delta||) before anything can be written:
//   - rows of up to 8192 floats, 4096 doubles or 16384 half/bfloat16 (8192 when rows are not 16-byte
//     aligned): one warp (short rows, 8 rows per block) or one block of 128/256/512 threads per row, each
//     thread holding its slice of x, grad and x0 in registers, so the row is read from memory once and written
//     once; warp shuffles (and one shared-memory exchange for a block) make each reduction;
//   - longer rows: one block per row, three coalesced passes over memory (grad; x, grad, x0; again to write).
// Everything is computed in opmath (float, double for double) and rounded once on the store. The per-row
// scalars use correctly rounded division and square root, so the result does not move under --use_fast_math.
#include "pgd_step.cuh"

#include <algorithm>
#include <cstdint>

namespace robustfast {
namespace cuda {
namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kLinfThreads = 256;
constexpr int kLinfBlocksPerSm = 2048 / kLinfThreads;  // a full SM of resident threads on sm_80 / sm_90
constexpr int kL2WarpBlock = 256;                      // warp-per-row kernel: 8 rows per block
constexpr int kL2StreamThreads = 512;
constexpr double kGradNormEps = 1e-10;  // robustfast.reference.pgd_step.GRAD_NORM_EPS

// kVec<T> elements make 16 bytes: one 128-bit memory transaction per thread.
template <typename T>
constexpr int kVec = static_cast<int>(16 / sizeof(T));

// VEC contiguous elements, aligned so that a copy is a single vector load or store.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

__device__ __forceinline__ float to_op(float v) { return v; }
__device__ __forceinline__ double to_op(double v) { return v; }
__device__ __forceinline__ float to_op(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_op(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_op(opmath_t<T> v);
template <>
__device__ __forceinline__ float from_op<float>(float v) { return v; }
template <>
__device__ __forceinline__ double from_op<double>(double v) { return v; }
template <>
__device__ __forceinline__ __half from_op<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_op<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Correctly rounded whatever the flags (--use_fast_math would otherwise approximate them).
__device__ __forceinline__ float op_sqrt(float v) { return __fsqrt_rn(v); }
__device__ __forceinline__ double op_sqrt(double v) { return sqrt(v); }
__device__ __forceinline__ float op_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double op_div(double a, double b) { return a / b; }

// clamp in which a NaN `v` passes through, as in torch.clamp / torch.maximum.
template <typename U>
__device__ __forceinline__ U clamp_keep_nan(U v, U lo, U hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

// sign(g) with sign(0) = sign(NaN) = 0, as torch.sign.
template <typename U>
__device__ __forceinline__ U sign_of(U g) {
  return static_cast<U>(g > U(0)) - static_cast<U>(g < U(0));
}

template <typename U>
__device__ __forceinline__ U linf_value(U x, U g, U x0, U alpha, U eps, U lo, U hi) {
  const U delta = clamp_keep_nan((x + alpha * sign_of(g)) - x0, -eps, eps);
  return clamp_keep_nan(x0 + delta, lo, hi);
}

// alpha / (||g|| + 1e-10): the factor that turns g into the step.
template <typename U>
__device__ __forceinline__ U l2_step_scale(U grad_sq, U alpha) {
  return op_div(alpha, op_sqrt(grad_sq) + static_cast<U>(kGradNormEps));
}

// min(eps / ||delta||, 1), and 1 when delta vanishes (the reference's eps/0 = inf, clamped to 1).
template <typename U>
__device__ __forceinline__ U l2_projection_factor(U delta_sq, U eps) {
  const U dn = op_sqrt(delta_sq);
  if (dn == U(0)) return U(1);
  const U f = op_div(eps, dn);
  return f > U(1) ? U(1) : f;  // NaN passes through, as in torch.clamp
}

// Sum of v over a group of GROUP threads (a warp, or the whole block when GROUP > 32); every thread of the
// group gets the total, summed in the same order each time. smem holds kWarp values; a block-wide group calls
// it from every thread.
template <int GROUP, typename U>
__device__ __forceinline__ U group_sum(U v, U* smem) {
  static_assert(GROUP % kWarp == 0 && GROUP / kWarp <= kWarp, "a group is 1 to 32 whole warps");
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  if constexpr (GROUP > kWarp) {
    constexpr int kWarps = GROUP / kWarp;
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    __syncthreads();  // every thread has read the previous call's partial sums
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = lane < kWarps ? smem[lane] : U(0);
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Linf: grid-stride over packs of VEC elements. A pack lies in one row unless d % VEC != 0; that case goes
// element by element. The numel % VEC elements after the last pack are done one per thread.
template <typename T, int VEC>
__global__ void __launch_bounds__(kLinfThreads)
    pgd_step_linf_kernel(const T* __restrict__ x, const T* __restrict__ grad, const T* __restrict__ x0,
                         const bool* __restrict__ active, const opmath_t<T>* __restrict__ alpha,
                         const opmath_t<T>* __restrict__ eps, T* __restrict__ out, int64_t numel, int64_t d,
                         opmath_t<T> lo, opmath_t<T> hi) {
  using U = opmath_t<T>;
  using P = Pack<T, VEC>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t nthreads = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t npacks = numel / VEC;
  if (tid < npacks) {
    const P* __restrict__ xp = reinterpret_cast<const P*>(x);
    const P* __restrict__ gp = reinterpret_cast<const P*>(grad);
    const P* __restrict__ x0p = reinterpret_cast<const P*>(x0);
    P* __restrict__ outp = reinterpret_cast<P*>(out);
    // Row and column of this thread's first element; the grid stride moves them by a constant (srow, scol).
    int64_t row = tid * VEC / d;
    int64_t col = tid * VEC - row * d;
    const int64_t stride = nthreads * VEC;
    const int64_t srow = stride / d;
    const int64_t scol = stride - srow * d;
    for (int64_t p = tid; p < npacks; p += nthreads) {
      const P xv = xp[p];
      P o;
      if (col + VEC <= d) {  // the whole pack is in one row: one flag, one alpha, one eps
        if (active[row]) {
          const P gv = gp[p];
          const P x0v = x0p[p];
          const U a = alpha[row], e = eps[row];
#pragma unroll
          for (int j = 0; j < VEC; ++j) {
            o.v[j] = from_op<T>(linf_value(to_op(xv.v[j]), to_op(gv.v[j]), to_op(x0v.v[j]), a, e, lo, hi));
          }
        } else {
          o = xv;
        }
      } else {  // the pack straddles a row boundary
        const P gv = gp[p];
        const P x0v = x0p[p];
        int64_t r = row, c = col;
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
          o.v[j] = active[r] ? from_op<T>(linf_value(to_op(xv.v[j]), to_op(gv.v[j]), to_op(x0v.v[j]), alpha[r],
                                                     eps[r], lo, hi))
                             : xv.v[j];
          if (++c == d) {
            c = 0;
            ++r;
          }
        }
      }
      outp[p] = o;
      row += srow;
      col += scol;
      if (col >= d) {
        col -= d;
        ++row;
      }
    }
  }
  const int64_t i = npacks * VEC + tid;
  if (i < numel) {
    const int64_t r = i / d;
    out[i] = active[r] ? from_op<T>(linf_value(to_op(x[i]), to_op(grad[i]), to_op(x0[i]), alpha[r], eps[r], lo, hi))
                       : x[i];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// L2, rows that fit in registers: a group of GROUP threads per row (a warp, BLOCK / 32 rows per block; or the
// whole block). Thread `lane` of a group holds packs lane, lane + GROUP, ... (ITEMS of them) of x, grad and x0,
// so d <= GROUP * ITEMS * VEC and d % VEC == 0. Loads and stores are coalesced across the group.
template <typename T, int VEC, int ITEMS, int GROUP, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    pgd_step_l2_cached_kernel(const T* __restrict__ x, const T* __restrict__ grad, const T* __restrict__ x0,
                              const bool* __restrict__ active, const opmath_t<T>* __restrict__ alpha,
                              const opmath_t<T>* __restrict__ eps, T* __restrict__ out, int64_t n, int64_t d,
                              opmath_t<T> lo, opmath_t<T> hi) {
  static_assert(BLOCK % GROUP == 0, "a block holds whole groups");
  using U = opmath_t<T>;
  using P = Pack<T, VEC>;
  __shared__ U smem[kWarp];
  const int lane = static_cast<int>(threadIdx.x % GROUP);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (BLOCK / GROUP) + threadIdx.x / GROUP;
  if (row >= n) return;  // a whole group leaves (a block-wide group never does: the grid has n blocks)
  const int64_t offset = row * d;
  const int64_t npacks = d / VEC;
  const P* __restrict__ xp = reinterpret_cast<const P*>(x + offset);
  const P* __restrict__ gp = reinterpret_cast<const P*>(grad + offset);
  const P* __restrict__ x0p = reinterpret_cast<const P*>(x0 + offset);
  P* __restrict__ outp = reinterpret_cast<P*>(out + offset);

  if (!active[row]) {  // uniform over the group
    for (int64_t i = lane; i < npacks; i += GROUP) outp[i] = xp[i];
    return;
  }
  const U a = alpha[row], e = eps[row];

  P xr[ITEMS], gr[ITEMS], x0r[ITEMS];
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    const int64_t i = static_cast<int64_t>(k) * GROUP + lane;
    if (i < npacks) {
      gr[k] = gp[i];
      xr[k] = xp[i];
      x0r[k] = x0p[i];
    }
  }

  U grad_sq = U(0);
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    if (static_cast<int64_t>(k) * GROUP + lane < npacks) {
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const U g = to_op(gr[k].v[j]);
        grad_sq += g * g;
      }
    }
  }
  const U scale = l2_step_scale(group_sum<GROUP>(grad_sq, smem), a);

  U delta_sq = U(0);
#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    if (static_cast<int64_t>(k) * GROUP + lane < npacks) {
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const U delta = (to_op(xr[k].v[j]) + scale * to_op(gr[k].v[j])) - to_op(x0r[k].v[j]);
        delta_sq += delta * delta;
      }
    }
  }
  const U factor = l2_projection_factor(group_sum<GROUP>(delta_sq, smem), e);

#pragma unroll
  for (int k = 0; k < ITEMS; ++k) {
    const int64_t i = static_cast<int64_t>(k) * GROUP + lane;
    if (i < npacks) {
      P o;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const U x0v = to_op(x0r[k].v[j]);
        const U delta = (to_op(xr[k].v[j]) + scale * to_op(gr[k].v[j])) - x0v;
        o.v[j] = from_op<T>(clamp_keep_nan(x0v + delta * factor, lo, hi));
      }
      outp[i] = o;
    }
  }
}

// L2, long rows: one block per row, three passes over memory (the second and third mostly hit L2).
// d % VEC == 0.
template <typename T, int VEC, int BLOCK>
__global__ void __launch_bounds__(BLOCK)
    pgd_step_l2_stream_kernel(const T* __restrict__ x, const T* __restrict__ grad, const T* __restrict__ x0,
                              const bool* __restrict__ active, const opmath_t<T>* __restrict__ alpha,
                              const opmath_t<T>* __restrict__ eps, T* __restrict__ out, int64_t d, opmath_t<T> lo,
                              opmath_t<T> hi) {
  using U = opmath_t<T>;
  using P = Pack<T, VEC>;
  constexpr int kStreamUnroll = VEC >= 8 ? 2 : 4;  // loads in flight per thread, within the register budget
  __shared__ U smem[kWarp];
  const int64_t row = blockIdx.x;
  const int64_t offset = row * d;
  const int64_t npacks = d / VEC;
  const P* __restrict__ xp = reinterpret_cast<const P*>(x + offset);
  const P* __restrict__ gp = reinterpret_cast<const P*>(grad + offset);
  const P* __restrict__ x0p = reinterpret_cast<const P*>(x0 + offset);
  P* __restrict__ outp = reinterpret_cast<P*>(out + offset);

  if (!active[row]) {  // uniform over the block
    for (int64_t i = threadIdx.x; i < npacks; i += BLOCK) outp[i] = xp[i];
    return;
  }
  const U a = alpha[row], e = eps[row];

  U grad_sq = U(0);
#pragma unroll kStreamUnroll
  for (int64_t i = threadIdx.x; i < npacks; i += BLOCK) {
    const P gv = gp[i];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const U g = to_op(gv.v[j]);
      grad_sq += g * g;
    }
  }
  const U scale = l2_step_scale(group_sum<BLOCK>(grad_sq, smem), a);

  U delta_sq = U(0);
#pragma unroll kStreamUnroll
  for (int64_t i = threadIdx.x; i < npacks; i += BLOCK) {
    const P xv = xp[i];
    const P gv = gp[i];
    const P x0v = x0p[i];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const U delta = (to_op(xv.v[j]) + scale * to_op(gv.v[j])) - to_op(x0v.v[j]);
      delta_sq += delta * delta;
    }
  }
  const U factor = l2_projection_factor(group_sum<BLOCK>(delta_sq, smem), e);

#pragma unroll kStreamUnroll
  for (int64_t i = threadIdx.x; i < npacks; i += BLOCK) {
    const P xv = xp[i];
    const P gv = gp[i];
    const P x0v = x0p[i];
    P o;
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const U x0e = to_op(x0v.v[j]);
      const U delta = (to_op(xv.v[j]) + scale * to_op(gv.v[j])) - x0e;
      o.v[j] = from_op<T>(clamp_keep_nan(x0e + delta * factor, lo, hi));
    }
    outp[i] = o;
  }
}

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <typename T>
bool all_aligned16(const T* x, const T* grad, const T* x0, const T* out) {
  return aligned16(x) && aligned16(grad) && aligned16(x0) && aligned16(out);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T, int VEC>
void launch_l2(const T* x, const T* grad, const T* x0, const bool* active, const opmath_t<T>* alpha,
               const opmath_t<T>* eps, T* out, int64_t n, int64_t d, opmath_t<T> lo, opmath_t<T> hi,
               cudaStream_t stream) {
  // Each thread caches kItems packs of each of x, grad and x0: 64 bytes of each (48 registers) for full packs;
  // for single elements, 16 of them (at least a register each) or 8 doubles.
  constexpr int kItems = VEC > 1 ? 4 : static_cast<int>(64 / (sizeof(T) < 4 ? 4 : sizeof(T)));
  constexpr int64_t kPerThread = static_cast<int64_t>(VEC) * kItems;
  const unsigned rows = static_cast<unsigned>(n);
  if (d <= kWarp * kPerThread) {
    pgd_step_l2_cached_kernel<T, VEC, kItems, kWarp, kL2WarpBlock>
        <<<static_cast<unsigned>(ceil_div(n, kL2WarpBlock / kWarp)), kL2WarpBlock, 0, stream>>>(x, grad, x0, active, alpha, eps, out, n,
                                                                          d, lo, hi);
  } else if (d <= 128 * kPerThread) {
    pgd_step_l2_cached_kernel<T, VEC, kItems, 128, 128>
        <<<rows, 128, 0, stream>>>(x, grad, x0, active, alpha, eps, out, n, d, lo, hi);
  } else if (d <= 256 * kPerThread) {
    pgd_step_l2_cached_kernel<T, VEC, kItems, 256, 256>
        <<<rows, 256, 0, stream>>>(x, grad, x0, active, alpha, eps, out, n, d, lo, hi);
  } else if (d <= 512 * kPerThread) {
    pgd_step_l2_cached_kernel<T, VEC, kItems, 512, 512>
        <<<rows, 512, 0, stream>>>(x, grad, x0, active, alpha, eps, out, n, d, lo, hi);
  } else {
    pgd_step_l2_stream_kernel<T, VEC, kL2StreamThreads>
        <<<rows, kL2StreamThreads, 0, stream>>>(x, grad, x0, active, alpha, eps, out, d, lo, hi);
  }
}

}  // namespace

template <typename T>
void launch_pgd_step_linf(const T* x, const T* grad, const T* x0, const bool* active, const opmath_t<T>* alpha,
                          const opmath_t<T>* eps, T* out, int64_t n, int64_t d, double lower, double upper,
                          int sm_count, cudaStream_t stream) {
  const int64_t numel = n * d;
  if (numel <= 0) return;
  using U = opmath_t<T>;
  const U lo = static_cast<U>(lower), hi = static_cast<U>(upper);
  const int64_t max_blocks = static_cast<int64_t>(std::max(sm_count, 1)) * kLinfBlocksPerSm;
  if (all_aligned16(x, grad, x0, out)) {
    constexpr int V = kVec<T>;
    const int64_t blocks = std::min<int64_t>(std::max<int64_t>(ceil_div(numel / V, kLinfThreads), 1), max_blocks);
    pgd_step_linf_kernel<T, V><<<static_cast<unsigned>(blocks), kLinfThreads, 0, stream>>>(
        x, grad, x0, active, alpha, eps, out, numel, d, lo, hi);
  } else {
    const int64_t blocks = std::min<int64_t>(ceil_div(numel, kLinfThreads), max_blocks);
    pgd_step_linf_kernel<T, 1><<<static_cast<unsigned>(blocks), kLinfThreads, 0, stream>>>(
        x, grad, x0, active, alpha, eps, out, numel, d, lo, hi);
  }
}

template <typename T>
void launch_pgd_step_l2(const T* x, const T* grad, const T* x0, const bool* active, const opmath_t<T>* alpha,
                        const opmath_t<T>* eps, T* out, int64_t n, int64_t d, double lower, double upper,
                        int sm_count, cudaStream_t stream) {
  (void)sm_count;  // one warp or block per row: the grid follows n
  if (n <= 0 || d <= 0) return;
  using U = opmath_t<T>;
  const U lo = static_cast<U>(lower), hi = static_cast<U>(upper);
  constexpr int V = kVec<T>;
  if (d % V == 0 && all_aligned16(x, grad, x0, out)) {
    launch_l2<T, V>(x, grad, x0, active, alpha, eps, out, n, d, lo, hi, stream);
  } else {
    launch_l2<T, 1>(x, grad, x0, active, alpha, eps, out, n, d, lo, hi, stream);
  }
}

#define ROBUSTFAST_PGD_STEP_INSTANTIATE(T)                                                                      \
  template void launch_pgd_step_linf<T>(const T*, const T*, const T*, const bool*, const opmath_t<T>*,        \
                                        const opmath_t<T>*, T*, int64_t, int64_t, double, double, int,         \
                                        cudaStream_t);                                                          \
  template void launch_pgd_step_l2<T>(const T*, const T*, const T*, const bool*, const opmath_t<T>*,          \
                                      const opmath_t<T>*, T*, int64_t, int64_t, double, double, int, cudaStream_t);
ROBUSTFAST_PGD_STEP_INSTANTIATE(float)
ROBUSTFAST_PGD_STEP_INSTANTIATE(double)
ROBUSTFAST_PGD_STEP_INSTANTIATE(__half)
ROBUSTFAST_PGD_STEP_INSTANTIATE(__nv_bfloat16)
#undef ROBUSTFAST_PGD_STEP_INSTANTIATE

}  // namespace cuda
}  // namespace robustfast
