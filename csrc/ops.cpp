// Every op of robustfast._C: its schema and its per-device kernels.
#include <torch/extension.h>
#include <torch/library.h>

#include "robustfast.h"

TORCH_LIBRARY(robustfast, m) {
  m.def(
      "pgd_step(Tensor x, Tensor grad, Tensor x0, Tensor active, Tensor alpha, Tensor eps, str norm, float lower, "
      "float upper) -> Tensor");
  m.def(
      "robust_loss_fwd(Tensor logits, Tensor labels, str kind, float alpha, float beta, float gamma, float q) -> "
      "Tensor");
  m.def(
      "robust_loss_bwd(Tensor grad_loss, Tensor logits, Tensor labels, str kind, float alpha, float beta, float gamma, "
      "float q, bool detach_focal_factor) -> Tensor");
  m.def(
      "knn_lid(Tensor queries, Tensor reference, int[] ks, str form, int self_offset) -> (Tensor distances, "
      "Tensor indices, Tensor mle, Tensor mom)");
  m.def(
      "knn_lid_backward(Tensor queries, Tensor reference, Tensor distances, Tensor indices, Tensor grad_distances, "
      "bool reference_grad) -> (Tensor grad_queries, Tensor grad_reference)");
  m.def(
      "apply_triggers(Tensor images, Tensor trigger_ids, Tensor flags, Tensor lut, Tensor colour, Tensor weight, "
      "Tensor pattern, Tensor pattern_index, Tensor additive) -> Tensor");
}

TORCH_LIBRARY_IMPL(robustfast, CPU, m) { m.impl("pgd_step", &pgd_step_cpu); }
TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("robust_loss_fwd", &robust_loss_fwd_cpu);
  m.impl("robust_loss_bwd", &robust_loss_bwd_cpu);
}
TORCH_LIBRARY_IMPL(robustfast, CPU, m) {
  m.impl("knn_lid", &knn_lid_cpu);
  m.impl("knn_lid_backward", &knn_lid_backward_cpu);
}
TORCH_LIBRARY_IMPL(robustfast, CPU, m) { m.impl("apply_triggers", &apply_triggers_cpu); }

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(robustfast, CUDA, m) { m.impl("pgd_step", &pgd_step_cuda); }
#endif

PYBIND11_MODULE(_C, m) {
  m.def("with_cuda", []() {
#ifdef WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
