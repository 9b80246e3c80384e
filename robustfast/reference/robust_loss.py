"""Plain-PyTorch definition of the robust losses for noisy labels: normalized losses and Active Passive Loss.

Per sample, with z the row of logits, ℓ = log_softmax(z), p = e^ℓ, y the label, e = onehot(y), K classes,
p̃_k = exp(max(ℓ_k, ln 1e−7)) (= clamp(p_k, 1e−7, 1) up to rounding) and A = −ln(1e−4):

    ce    −ℓ_y                                  fl    −(1−p_y)^γ ℓ_y
    mae   1 − p_y                               rce   A·Σ_{k≠y} p̃_k
    gce   (1 − p̃_y^q)/q                         nce   ℓ_y / Σ_k ℓ_k
    nfl   −(1−p_y)^γ ℓ_y / D_F,  D_F = −Σ_k (1−p_k)^γ ℓ_k
    ngce  (1 − p̃_y^q) / (K − Σ_k p̃_k^q)       nmae  (1 − p_y) / (2(K−1))
    nrce  Σ_{k≠y} p̃_k / (K−1)

and every kind is α·active + β·passive (`COMPONENTS`): a single active loss is scaled by α, a single passive
one by β, SCE is α·CE + β·RCE. Choices about the published code (HanxunH/Active-Passive-Losses), from the spec:
- MAE is its reduced form 1 − p_y, half the true L1 distance 2 − 2p_y; NMAE is that over 2(K−1).
- RCE clamps log 0 to ln 1e−4, so A = −ln(1e−4) ≈ 9.2103; its clamp of p at 1e−7 cuts the gradient of every
  p_k < 1e−7 (the upper clamp at 1 is never active).
- NRCE divides by A(K−1), the intended normaliser, not the code's (K−1)/4.
- FL's factor (1−p_y)^γ is detached by default, as in the code; `detach_focal_factor=False` differentiates it.
- NFL, as in the code, detaches the focal factors (1−p_k)^γ but not ℓ_k: with detach_focal_factor=True (the
  published behaviour) every factor, the numerator's (1−p_y)^γ and each (1−p_k)^γ of D_F, is a constant and the
  gradient flows through ℓ_y and every ℓ_k of D_F; with False nothing is detached.
- NCE and NGCE differentiate their denominators; GCE and NGCE cut the gradient of clamped p̃ like RCE.

`row_stats` computes, once per row, every statistic the family needs (what a fused kernel's first sweep
accumulates); `loss_from_stats` and `grad_from_stats` map them to the loss and to its closed-form gradient.
The arithmetic runs in float32 (float64 for float64 logits) and results round once to the logits' dtype.
"""
import math
from typing import NamedTuple

import torch

from robustfast._util.checks import opmath_dtype

A = -math.log(1e-4)
LOG_P_MIN = math.log(1e-7)

ACTIVE = ("ce", "fl", "gce", "nce", "nfl", "ngce")
PASSIVE = ("mae", "rce", "nmae", "nrce")
COMPONENTS = {
    **{k: (k, None) for k in ACTIVE},
    **{k: (None, k) for k in PASSIVE},
    "sce": ("ce", "rce"),
    **{f"{a}+{b}": (a, b) for a in ("nce", "nfl", "ngce") for b in ("rce", "mae")},
}
LOSSES = tuple(COMPONENTS)


class RowStats(NamedTuple):
    logp: torch.Tensor          # ℓ, (B, K)
    p: torch.Tensor             # e^ℓ, (B, K)
    is_label: torch.Tensor      # e as bool, (B, K)
    unclamped: torch.Tensor     # ℓ_k ≥ ln 1e−7: where the clamp of p passes the gradient, (B, K)
    pow_q: torch.Tensor         # p̃_k^q, (B, K)
    logp_y: torch.Tensor        # ℓ_y, (B,)
    p_y: torch.Tensor
    not_p_y: torch.Tensor       # 1 − p_y, as −expm1(ℓ_y)
    sum_logp: torch.Tensor      # S = Σ_k ℓ_k
    rce_sum: torch.Tensor       # R = Σ_{k≠y} p̃_k
    rce_grad_sum: torch.Tensor  # P = Σ_{k≠y, unclamped} p_k
    rce_grad_rest: torch.Tensor  # 1 − P, summed directly: Σ_{k=y or clamped} p_k
    pow_sum: torch.Tensor       # T = Σ_k p̃_k^q
    pow_grad_sum: torch.Tensor  # Σ_{k unclamped} p_k^q
    gce_num: torch.Tensor       # 1 − p̃_y^q
    focal_y: torch.Tensor       # (1 − p_y)^γ, detached unless detach_focal_factor is False
    focal_norm: torch.Tensor    # D_F = −Σ_k w_k ℓ_k, w_k = (1−p_k)^γ detached unless detach_focal_factor is False
    focal_w_sum: torch.Tensor   # W = Σ_k w_k (detached: only the closed-form gradient uses it)
    focal_u_sum: torch.Tensor   # U = Σ_k u_k, u_k = p_k w_k ℓ_k/(1−p_k) (→ −p_k w_k as p_k → 1), detached


def _focal_u(logp, p, w):
    """u_k = p_k w_k ℓ_k/(1−p_k), with ℓ_k/(1−p_k) → −1 as p_k → 1: −∂w_k/∂ℓ_k · ℓ_k / γ."""
    not_p = -torch.expm1(logp)
    return p * w * torch.where(not_p > 0, logp / torch.where(not_p > 0, not_p, 1.0), -1.0)


def row_stats(logits, labels, gamma: float = 0.5, q: float = 0.7, detach_focal_factor: bool = True) -> RowStats:
    """Every per-row statistic, differentiable where the losses are and detached where the spec detaches."""
    z = logits.to(opmath_dtype(logits.dtype))
    y = labels.long().unsqueeze(1)
    shifted = z - z.amax(dim=1, keepdim=True).detach()  # ℓ does not depend on the shift
    logp = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    p = logp.exp()
    is_label = torch.zeros_like(logp, dtype=torch.bool).scatter_(1, y, True)
    unclamped = logp >= LOG_P_MIN
    log_p_tilde = logp.clamp(min=LOG_P_MIN)
    pow_q = (q * log_p_tilde).exp()
    logp_y = logp.gather(1, y).squeeze(1)
    not_p_y = -torch.expm1(logp_y)
    focal_y = not_p_y**gamma
    w_all = (-torch.expm1(logp)) ** gamma
    with torch.no_grad():
        u_all = _focal_u(logp, p, w_all)
    return RowStats(
        logp=logp,
        p=p,
        is_label=is_label,
        unclamped=unclamped,
        pow_q=pow_q,
        logp_y=logp_y,
        p_y=logp_y.exp(),
        not_p_y=not_p_y,
        sum_logp=logp.sum(dim=1),
        rce_sum=torch.where(is_label, 0.0, log_p_tilde.exp()).sum(dim=1),
        rce_grad_sum=torch.where(~is_label & unclamped, p, 0.0).sum(dim=1),
        rce_grad_rest=torch.where(is_label | ~unclamped, p, 0.0).sum(dim=1),
        pow_sum=pow_q.sum(dim=1),
        pow_grad_sum=torch.where(unclamped, pow_q, 0.0).sum(dim=1),
        gce_num=-torch.expm1(q * log_p_tilde.gather(1, y).squeeze(1)),
        focal_y=focal_y.detach() if detach_focal_factor else focal_y,
        focal_norm=((w_all.detach() if detach_focal_factor else w_all) * -logp).sum(dim=1),
        focal_w_sum=w_all.detach().sum(dim=1),
        focal_u_sum=u_all.sum(dim=1),
    )


def _component_loss(name: str, st: RowStats, q: float) -> torch.Tensor:
    k = st.logp.shape[1]
    if name == "ce":
        return -st.logp_y
    if name == "fl":
        return -st.focal_y * st.logp_y
    if name == "nfl":
        return -st.focal_y * st.logp_y / st.focal_norm
    if name == "mae":
        return st.not_p_y
    if name == "nmae":
        return st.not_p_y / (2 * (k - 1))
    if name == "rce":
        return A * st.rce_sum
    if name == "nrce":
        return st.rce_sum / (k - 1)
    if name == "gce":
        return st.gce_num / q
    if name == "ngce":
        return st.gce_num / (k - st.pow_sum)
    if name == "nce":
        return st.logp_y / st.sum_logp
    raise ValueError(f"unknown loss component {name!r}")


def _component_grad(name: str, st: RowStats, gamma: float, q: float, detach_focal_factor: bool) -> torch.Tensor:
    """d(per-sample loss)/dz of one component: c·(p − e), plus a second term for NCE, NGCE, RCE and NRCE."""
    k = st.logp.shape[1]
    # p − e, with p_y − 1 taken as −expm1(ℓ_y) to keep its precision when p_y is near 1
    p_minus_e = torch.where(st.is_label, -st.not_p_y.unsqueeze(1), st.p)
    if name == "ce":
        return p_minus_e
    if name in ("fl", "nfl"):
        c = st.focal_y
        if not detach_focal_factor:
            # ℓ_y/(1−p_y) → −1 as p_y → 1
            ratio = torch.where(st.not_p_y > 0, st.logp_y / st.not_p_y, -1.0)
            c = c * (1 - gamma * st.p_y * ratio)
        if name == "fl":
            return c.unsqueeze(1) * p_minus_e
        # NFL = N/D with N = −w_y ℓ_y, D = −Σ_k w_k ℓ_k: ∇N/D − (N/D²)∇D, where
        # ∂D/∂z_j = −w_j + p_j W (+ γ(u_j − p_j U) when the factors are not detached)
        d = st.focal_norm
        r = -st.focal_y * st.logp_y / d**2
        w = (-torch.expm1(st.logp)) ** gamma
        dd = -w + st.p * st.focal_w_sum.unsqueeze(1)
        if not detach_focal_factor:
            u = _focal_u(st.logp, st.p, w)
            dd = dd + gamma * (u - st.p * st.focal_u_sum.unsqueeze(1))
        return (c / d).unsqueeze(1) * p_minus_e - r.unsqueeze(1) * dd
    if name in ("mae", "nmae"):
        c = st.p_y if name == "mae" else st.p_y / (2 * (k - 1))
        return c.unsqueeze(1) * p_minus_e
    if name in ("rce", "nrce"):
        scale = A if name == "rce" else 1.0 / (k - 1)
        # p_j·(1[j≠y, unclamped] − P), each branch from a direct sum, free of cancellation
        passes = ~st.is_label & st.unclamped
        return scale * st.p * torch.where(passes, st.rce_grad_rest.unsqueeze(1), -st.rce_grad_sum.unsqueeze(1))
    unclamped_y = st.logp_y >= LOG_P_MIN
    p_y_q = torch.where(unclamped_y, (q * st.logp_y).exp(), 0.0)
    if name == "gce":
        return p_y_q.unsqueeze(1) * p_minus_e
    if name == "ngce":
        denom = k - st.pow_sum
        c = q * p_y_q / denom
        d = q * st.gce_num / denom**2
        pow_passes = torch.where(st.unclamped, st.pow_q, 0.0)
        return c.unsqueeze(1) * p_minus_e + d.unsqueeze(1) * (pow_passes - st.p * st.pow_grad_sum.unsqueeze(1))
    if name == "nce":
        s = st.sum_logp
        c = -1.0 / s
        d = st.logp_y / s**2
        return c.unsqueeze(1) * p_minus_e + d.unsqueeze(1) * (k * st.p - 1)
    raise ValueError(f"unknown loss component {name!r}")


def _check_kind(kind: str) -> tuple:
    if kind not in COMPONENTS:
        raise ValueError(f"kind must be one of {', '.join(LOSSES)}; got {kind!r}")
    return COMPONENTS[kind]


def loss_from_stats(st: RowStats, kind: str, alpha: float = 1.0, beta: float = 1.0, q: float = 0.7):
    active, passive = _check_kind(kind)
    parts = []
    if active is not None:
        parts.append(alpha * _component_loss(active, st, q))
    if passive is not None:
        parts.append(beta * _component_loss(passive, st, q))
    return sum(parts[1:], parts[0])


def grad_from_stats(st: RowStats, kind: str, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5,
                    q: float = 0.7, detach_focal_factor: bool = True):
    active, passive = _check_kind(kind)
    parts = []
    if active is not None:
        parts.append(alpha * _component_grad(active, st, gamma, q, detach_focal_factor))
    if passive is not None:
        parts.append(beta * _component_grad(passive, st, gamma, q, detach_focal_factor))
    return sum(parts[1:], parts[0])


def robust_loss(logits, labels, kind: str, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5,
                q: float = 0.7, detach_focal_factor: bool = True) -> torch.Tensor:
    """Per-sample loss (B,) of `kind` for logits (B, K) and integer labels (B,), in the logits' dtype."""
    st = row_stats(logits, labels, gamma, q, detach_focal_factor)
    return loss_from_stats(st, kind, alpha, beta, q).to(logits.dtype)


def robust_loss_grad(logits, labels, kind: str, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.5,
                     q: float = 0.7, detach_focal_factor: bool = True, grad_out=None) -> torch.Tensor:
    """d robust_loss[i] / d logits[i], (B, K), in closed form (spec §6), in the logits' dtype.

    With grad_out (B,), row i is scaled by grad_out[i] before the one rounding: the backward of the op.
    """
    with torch.no_grad():
        st = row_stats(logits, labels, gamma, q, detach_focal_factor)
        grad = grad_from_stats(st, kind, alpha, beta, gamma, q, detach_focal_factor)
        if grad_out is not None:
            grad = grad * grad_out.to(grad.dtype).unsqueeze(1)
        return grad.to(logits.dtype)
