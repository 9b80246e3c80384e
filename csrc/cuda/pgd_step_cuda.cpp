// CUDA kernel of robustfast::pgd_step (registered as robustfast::_pgd_step_cuda): argument checks, the output,
// and the launch on the current stream.
// The kernels themselves live in pgd_step.cu behind a raw-pointer launcher.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>

#include "../pgd_step_checks.h"
#include "pgd_step.cuh"

namespace {

// scalar_t: ATen's element type; cuda_t: the same bits as the kernels' type (__half for at::Half, ...).
template <typename scalar_t, typename cuda_t>
void launch(robustfast::PgdNorm norm, const at::Tensor& x, const at::Tensor& grad, const at::Tensor& x0,
            const at::Tensor& active, const at::Tensor& alpha, const at::Tensor& eps, at::Tensor& out, int64_t n,
            int64_t d, double lower, double upper, int sm_count, cudaStream_t stream) {
  static_assert(sizeof(scalar_t) == sizeof(cuda_t), "the kernel type must have ATen's layout");
  using opmath_t = robustfast::cuda::opmath_t<cuda_t>;
  const auto in = [](const at::Tensor& t) { return reinterpret_cast<const cuda_t*>(t.const_data_ptr<scalar_t>()); };
  const auto launcher = norm == robustfast::PgdNorm::Linf ? robustfast::cuda::launch_pgd_step_linf<cuda_t>
                                                          : robustfast::cuda::launch_pgd_step_l2<cuda_t>;
  launcher(in(x), in(grad), in(x0), active.const_data_ptr<bool>(), alpha.const_data_ptr<opmath_t>(),
           eps.const_data_ptr<opmath_t>(), reinterpret_cast<cuda_t*>(out.mutable_data_ptr<scalar_t>()), n, d,
           lower, upper, sm_count, stream);
}

at::Tensor pgd_step_cuda(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& active,
                         const at::Tensor& alpha, const at::Tensor& eps, c10::string_view norm, double lower,
                         double upper) {
  const robustfast::PgdNorm kind =
      robustfast::check_pgd_step_args(x, grad, x0, active, alpha, eps, norm, lower, upper, c10::DeviceType::CUDA);
  const int64_t n = x.size(0);
  TORCH_CHECK(n <= std::numeric_limits<int32_t>::max(), "pgd_step: at most 2^31 - 1 samples on CUDA, got ", n);
  const c10::cuda::CUDAGuard device_guard(x.device());
  at::Tensor out = at::empty_like(x);  // x's strides: the kernels write the storage in x's order
  if (out.numel() == 0) return out;
  const int64_t d = x.numel() / n;
  const int sm_count = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  switch (x.scalar_type()) {
    case at::kFloat:
      launch<float, float>(kind, x, grad, x0, active, alpha, eps, out, n, d, lower, upper, sm_count, stream);
      break;
    case at::kDouble:
      launch<double, double>(kind, x, grad, x0, active, alpha, eps, out, n, d, lower, upper, sm_count, stream);
      break;
    case at::kHalf:
      launch<at::Half, __half>(kind, x, grad, x0, active, alpha, eps, out, n, d, lower, upper, sm_count, stream);
      break;
    case at::kBFloat16:
      launch<at::BFloat16, __nv_bfloat16>(kind, x, grad, x0, active, alpha, eps, out, n, d, lower, upper, sm_count,
                                          stream);
      break;
    default:
      TORCH_CHECK(false, "pgd_step: unsupported dtype ", x.scalar_type());  // rejected by the checks already
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(robustfast, CUDA, m) { m.impl("_pgd_step_cuda", &pgd_step_cuda); }
