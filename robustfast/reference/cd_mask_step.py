"""Plain-PyTorch definition of Cognitive Distillation's mask step (specs: cognitive_distillation.md §1–2).

Per image, with θ (C_m×H×W, C_m = 1 or C), m = (tanh θ + 1)/2 = σ(2θ), colours r (C per image, broadcast over H×W):

    cd_mask_blend:  m, x̃ = m⊙x + (1−m)⊙r
    cd_mask_step:   from G = ∂L/∂x̃ (already scaled by 1/B_ref), the mask gradient in closed form
                      ∂J/∂m = Σ_c G_c (x_c − r_c) + s·[γ·∂‖m‖_p/∂m + (2β/(C_m·H·W))·Σ_{n∈𝒩} (m − m_n)]
                    (s = 1/B_ref; 𝒩 the in-bounds 4-neighbours; with C_m = C no sum over c, neighbours within the
                    channel; ∂‖m‖₁/∂m = 1 as m > 0, ∂‖m‖₂/∂m = m/‖m‖₂), then ∂J/∂θ = ∂J/∂m · 2m(1−m) and one
                    Adam step with betas (0.1, 0.1), eps 1e−8 and bias correction at step t ≥ 1.
Returns new θ, M, V. Arithmetic in float32 (float64 for float64 data), rounded once to the inputs' dtype.
"""
import torch

from robustfast._util.checks import opmath_dtype

BETA1 = BETA2 = 0.1
ADAM_EPS = 1e-8


def mask_of(theta: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(theta) + 1) / 2


def cd_mask_blend(theta, x, r):
    """θ (N, C_m, H, W), x (N, C, H, W), r (N, C) → (m (N, C_m, H, W), x̃ (N, C, H, W))."""
    cdt = opmath_dtype(x.dtype)
    m = mask_of(theta.to(cdt))
    xt = m * x.to(cdt) + (1 - m) * r.to(cdt)[:, :, None, None]
    return m.to(theta.dtype), xt.to(x.dtype)


def neighbour_sum(m: torch.Tensor) -> torch.Tensor:
    """Σ over in-bounds 4-neighbours n of (m − m_n), per channel: the gradient of the squared TV up to 2/(C_m·H·W)."""
    out = torch.zeros_like(m)
    dh = m[..., 1:, :] - m[..., :-1, :]
    dw = m[..., :, 1:] - m[..., :, :-1]
    out[..., 1:, :] += dh
    out[..., :-1, :] -= dh
    out[..., :, 1:] += dw
    out[..., :, :-1] -= dw
    return out


def theta_grad(grad, x, r, theta, gamma: float, beta: float, p: int, scale: float) -> torch.Tensor:
    """∂J/∂θ in closed form, in the compute precision."""
    cdt = opmath_dtype(x.dtype)
    g, x, r, theta = grad.to(cdt), x.to(cdt), r.to(cdt), theta.to(cdt)
    t = torch.tanh(theta)
    m = (t + 1) / 2
    data = g * (x - r[:, :, None, None])
    if theta.shape[1] == 1:
        data = data.sum(1, keepdim=True)
    # ∂‖m‖₁/∂m = 1 (m > 0); ∂‖m‖₂/∂m = m/‖m‖₂
    sparse = torch.full_like(m, gamma) if p == 1 else gamma * m / m.flatten(1).norm(dim=1)[:, None, None, None]
    cm_hw = m[0].numel()
    gm = data + scale * (sparse + (2 * beta / cm_hw) * neighbour_sum(m))
    return gm * (1 - t * t) / 2  # dm/dθ = 2m(1 − m) = (1 − tanh²θ)/2


def cd_mask_step(grad, x, r, theta, exp_avg, exp_avg_sq, step: int, lr: float, gamma: float, beta: float, p: int,
                 scale: float):
    """One fused backward + Adam step; returns (θ, M, V) after step `step` (1-based)."""
    cdt = opmath_dtype(x.dtype)
    g = theta_grad(grad, x, r, theta, gamma, beta, p, scale)
    m1 = BETA1 * exp_avg.to(cdt) + (1 - BETA1) * g
    v1 = BETA2 * exp_avg_sq.to(cdt) + (1 - BETA2) * g * g
    bc1 = 1 - BETA1**step
    bc2 = 1 - BETA2**step
    new_theta = theta.to(cdt) - (lr / bc1) * m1 / (v1.sqrt() / bc2**0.5 + ADAM_EPS)
    return new_theta.to(theta.dtype), m1.to(theta.dtype), v1.to(theta.dtype)
