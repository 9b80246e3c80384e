// Kernel entry points of robustfast._C, registered in ops.cpp.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

at::Tensor pgd_step_cpu(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& active,
                        const at::Tensor& alpha, const at::Tensor& eps, c10::string_view norm, double lower,
                        double upper);

at::Tensor robust_loss_fwd_cpu(const at::Tensor& logits, const at::Tensor& labels, c10::string_view kind,
                               double alpha, double beta, double gamma, double q);
at::Tensor robust_loss_bwd_cpu(const at::Tensor& grad_loss, const at::Tensor& logits, const at::Tensor& labels,
                               c10::string_view kind, double alpha, double beta, double gamma, double q,
                               bool detach_focal_factor);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> knn_lid_cpu(const at::Tensor& queries,
                                                                       const at::Tensor& reference,
                                                                       at::IntArrayRef ks, c10::string_view form,
                                                                       int64_t self_offset);
std::tuple<at::Tensor, at::Tensor> knn_lid_backward_cpu(const at::Tensor& queries, const at::Tensor& reference,
                                                        const at::Tensor& distances, const at::Tensor& indices,
                                                        const at::Tensor& grad_distances, bool reference_grad);
at::Tensor apply_triggers_cpu(const at::Tensor& images, const at::Tensor& trigger_ids, const at::Tensor& flags,
                              const at::Tensor& lut, const at::Tensor& colour, const at::Tensor& weight,
                              const at::Tensor& pattern, const at::Tensor& pattern_index, const at::Tensor& additive);

#ifdef WITH_CUDA
at::Tensor pgd_step_cuda(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& active,
                         const at::Tensor& alpha, const at::Tensor& eps, c10::string_view norm, double lower,
                         double upper);
#endif
