// The Python module robustfast._C. The kernels register themselves (TORCH_LIBRARY_IMPL at the end of each
// csrc/cpu/<op>.cpp and csrc/cuda/<op>_cuda.cpp) for the schemas that robustfast/ops/<op>.py defines.
#include <torch/extension.h>

PYBIND11_MODULE(_C, m) {
  m.def("with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
