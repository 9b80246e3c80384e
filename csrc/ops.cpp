// The Python module robustfast._C. The kernels register themselves (TORCH_LIBRARY_IMPL at the end of each
// csrc/cpu/<op>.cpp and csrc/cuda/<op>_cuda.cpp) for the schemas that robustfast/ops/<op>.py defines.
#include <torch/extension.h>

void register_nmcs(pybind11::module_& m);  // csrc/cpu/nmcs.cpp

PYBIND11_MODULE(_C, m) {
  m.def("with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  });
  register_nmcs(m);
}
