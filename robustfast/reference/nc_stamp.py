"""Plain-PyTorch definition of nc_stamp: Neural Cleanse's stamp for K candidate triggers over one batch at once.

For images x (B, C, H, W), masks m (K, H, W) and patterns p (K, C, H, W), all in [0, 1] image space,

    out[k·B + b] = (1 − m_k) ⊙ x_b + m_k ⊙ p_k        (K·B, C, H, W), m_k broadcast over the channels,

so one forward of the model sees every class's stamped batch. The backward, given g = ∂L/∂out, is

    ∂x_b = Σ_k (1 − m_k) ⊙ g_kb,   ∂m_k = Σ_b Σ_c g_kb ⊙ (p_k − x_b),   ∂p_k = m_k ⊙ Σ_b g_kb.

Arithmetic in float32 (float64 for float64 inputs); results round once to the input dtype.
"""
import torch

from robustfast._util.checks import opmath_dtype


def nc_stamp(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    t = opmath_dtype(x.dtype)
    m = mask.to(t)[:, None, None]  # (K, 1, 1, H, W)
    out = (1 - m) * x.to(t)[None] + m * pattern.to(t)[:, None]
    return out.flatten(0, 1).to(x.dtype).contiguous()


def nc_stamp_backward(grad: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
                      pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t = opmath_dtype(x.dtype)
    k, b = mask.shape[0], x.shape[0]
    g = grad.to(t).view(k, b, *x.shape[1:])
    m = mask.to(t)
    grad_x = torch.einsum("kbchw,khw->bchw", g, 1 - m)
    grad_mask = torch.einsum("kbchw,kchw->khw", g, pattern.to(t)) - torch.einsum("kbchw,bchw->khw", g, x.to(t))
    grad_pattern = m[:, None] * g.sum(1)
    return (grad_x.to(x.dtype).contiguous(), grad_mask.to(mask.dtype).contiguous(),
            grad_pattern.to(pattern.dtype).contiguous())
