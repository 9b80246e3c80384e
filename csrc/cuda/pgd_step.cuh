// CUDA kernels of robustfast::pgd_step on raw device pointers (no torch headers: this file and pgd_step.cu
// build standalone with nvcc). pgd_step_cuda.cpp checks the tensors and calls the launchers below.
//
// Every launcher computes, for each row r < n of d contiguous elements (out-of-place, out must not alias):
//   Linf: delta = clip(x + alpha[r]*sign(g) - x0, -eps[r], eps[r])
//   L2:   delta = x + alpha[r]*g/(||g||+1e-10) - x0, scaled by min(eps[r]/||delta||, 1) (1 when ||delta|| = 0)
//   out = clamp(x0 + delta, lower, upper), or out = x where active[r] is false.
// Arithmetic runs in OpMath<T> (float for float/__half/__nv_bfloat16, double for double), norms accumulate in
// it, and each element is rounded once when stored. Launches are asynchronous on `stream`; errors surface
// through cudaGetLastError (the caller checks). sm_count (the device's multiprocessor count) sizes the grid.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace robustfast {
namespace cuda {

template <typename T>
struct OpMath {
  using type = float;
};
template <>
struct OpMath<double> {
  using type = double;
};
template <typename T>
using opmath_t = typename OpMath<T>::type;

template <typename T>
void launch_pgd_step_linf(const T* x, const T* grad, const T* x0, const bool* active, const opmath_t<T>* alpha,
                          const opmath_t<T>* eps, T* out, int64_t n, int64_t d, double lower, double upper,
                          int sm_count, cudaStream_t stream);

template <typename T>
void launch_pgd_step_l2(const T* x, const T* grad, const T* x0, const bool* active, const opmath_t<T>* alpha,
                        const opmath_t<T>* eps, T* out, int64_t n, int64_t d, double lower, double upper,
                        int sm_count, cudaStream_t stream);

#define ROBUSTFAST_PGD_STEP_DECLARE(T)                                                                          \
  extern template void launch_pgd_step_linf<T>(const T*, const T*, const T*, const bool*, const opmath_t<T>*, \
                                               const opmath_t<T>*, T*, int64_t, int64_t, double, double, int,  \
                                               cudaStream_t);                                                   \
  extern template void launch_pgd_step_l2<T>(const T*, const T*, const T*, const bool*, const opmath_t<T>*,   \
                                             const opmath_t<T>*, T*, int64_t, int64_t, double, double, int,    \
                                             cudaStream_t);
ROBUSTFAST_PGD_STEP_DECLARE(float)
ROBUSTFAST_PGD_STEP_DECLARE(double)
ROBUSTFAST_PGD_STEP_DECLARE(__half)
ROBUSTFAST_PGD_STEP_DECLARE(__nv_bfloat16)
#undef ROBUSTFAST_PGD_STEP_DECLARE

}  // namespace cuda
}  // namespace robustfast
