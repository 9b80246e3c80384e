"""cd_mask_step: Cognitive Distillation's mask optimisation as two fused passes per step.

`cd_mask_blend` maps θ to the mask m = (tanh θ + 1)/2 and the masked input x̃ = m⊙x + (1−m)⊙r in one pass;
`cd_mask_step` takes the model's input gradient G = ∂L/∂x̃ and writes ∂J/∂θ in closed form (data term, γ·‖m‖_p,
the squared-TV 4-neighbour stencil, the tanh factor) straight into an Adam step with betas (0.1, 0.1), returning
the new θ and moments. robustfast.reference.cd_mask_step is the definition. Neither reads tensor values on the
host: the caller checks images once (robustfast.backdoor.CognitiveDistillation does).
"""
from __future__ import annotations

import torch

from robustfast import _backend
from robustfast._util.checks import check_float_tensor, check_like, is_int, is_real, require
from robustfast.reference import cd_mask_step as reference

DTYPES = (torch.float32, torch.float64)


def _fake_blend(theta, x, r):
    return torch.empty_like(theta), torch.empty_like(x)


def _fake_step(grad, x, r, theta, exp_avg, exp_avg_sq, step, lr, gamma, beta, p, scale):
    return torch.empty_like(theta), torch.empty_like(theta), torch.empty_like(theta)


def _inputs(device, dtype, i: int, n: int, c: int, cm: int, h: int, w: int):
    g = torch.Generator().manual_seed(100 + i)
    x = torch.rand(n, c, h, w, generator=g, dtype=torch.float64)
    r = torch.rand(n, c, generator=g, dtype=torch.float64)
    theta = 3 * torch.rand(n, cm, h, w, generator=g, dtype=torch.float64) - 1
    grad = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) / 100
    exp_avg = torch.randn(n, cm, h, w, generator=g, dtype=torch.float64) / 1000
    exp_avg_sq = torch.rand(n, cm, h, w, generator=g, dtype=torch.float64) / 1e6
    return [t.to(device, dtype) for t in (grad, x, r, theta, exp_avg, exp_avg_sq)]


SHAPES = ((3, 3, 1, 7, 9), (2, 3, 3, 5, 6), (2, 1, 1, 11, 4))


def _blend_samples(device, dtype):
    out = []
    for i, shape in enumerate(SHAPES):
        _, x, r, theta, _, _ = _inputs(device, dtype, i, *shape)
        out.append((theta, x, r))
    return out


def _step_samples(device, dtype):
    out = []
    for i, shape in enumerate(SHAPES):
        args = _inputs(device, dtype, i, *shape)
        out.append((*args, 1 + 2 * i, 0.1, 0.01 * (i + 1), 1.0 + 4 * i, 1 + i % 2, 0.01))
    return out


BLEND = _backend.register_op(
    "cd_mask_blend", "(Tensor theta, Tensor x, Tensor r) -> (Tensor, Tensor)",
    reference=reference.cd_mask_blend, fake=_fake_blend,
    triton="robustfast.kernels.cd_mask_step:cd_mask_blend_triton", native=("cpp",),
    samples=_blend_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "cd_mask_step",
    "(Tensor grad, Tensor x, Tensor r, Tensor theta, Tensor exp_avg, Tensor exp_avg_sq, int step, float lr, "
    "float gamma, float beta, int p, float scale) -> (Tensor, Tensor, Tensor)",
    reference=reference.cd_mask_step, fake=_fake_step,
    triton="robustfast.kernels.cd_mask_step:cd_mask_step_triton", native=("cpp",),
    samples=_step_samples, dtypes=DTYPES,
)


def _check_blend_args(theta, x, r) -> None:
    check_float_tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must be N×C×H×W (rank 4), got shape {tuple(x.shape)}")
    check_float_tensor(theta, "theta")
    n, c, h, w = x.shape
    if theta.shape not in ((n, 1, h, w), (n, c, h, w)):
        raise ValueError(f"theta must have shape ({n}, 1, {h}, {w}) or ({n}, {c}, {h}, {w}), got "
                         f"{tuple(theta.shape)}")
    check_float_tensor(r, "r")
    if r.shape != (n, c):
        raise ValueError(f"r must hold one colour per image and channel, shape ({n}, {c}), got {tuple(r.shape)}")
    for t, name in ((theta, "theta"), (r, "r")):
        if t.dtype != x.dtype or t.device != x.device:
            raise ValueError(f"{name} must have x's dtype and device ({x.dtype}, {x.device}), got "
                             f"{t.dtype}, {t.device}")
    if x.dtype not in DTYPES:
        raise ValueError(f"x must be float32 or float64, got {x.dtype}")


def cd_mask_blend(theta: torch.Tensor, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, x̃) for θ (N, C_m, H, W) with C_m ∈ {1, C}, images x (N, C, H, W) and colours r (N, C). No host read."""
    _check_blend_args(theta, x, r)
    return BLEND.call(theta.contiguous(), x.contiguous(), r.contiguous())


def check_hyper(lr, gamma, beta, p, scale=1.0) -> None:
    """lr > 0, gamma >= 0, beta >= 0, p in {1, 2}, scale > 0: Python numbers, no host read."""
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("gamma", gamma, is_real(gamma) and gamma >= 0, "a finite number >= 0")
    require("beta", beta, is_real(beta) and beta >= 0, "a finite number >= 0")
    require("p", p, p in (1, 2) and not isinstance(p, bool), "1 or 2")
    require("scale", scale, is_real(scale) and scale > 0, "a finite number > 0")


def cd_mask_step(grad, x, r, theta, exp_avg, exp_avg_sq, *, step: int, lr: float, gamma: float, beta: float,
                 p: int = 1, scale: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One closed-form backward + Adam step (betas 0.1, 0.1; eps 1e−8) of the CD objective for the masks θ.

    grad: ∂L/∂x̃ (N, C, H, W) of the data term, already divided by the reference batch; scale: the same 1/B_ref
    applied to the γ and β terms. step: Adam's 1-based step count. Returns the new (θ, M, V). No host read."""
    _check_blend_args(theta, x, r)
    check_like(grad, x, "grad", "x")
    check_like(exp_avg, theta, "exp_avg", "theta")
    check_like(exp_avg_sq, theta, "exp_avg_sq", "theta")
    require("step", step, is_int(step) and step >= 1, "an int >= 1")
    check_hyper(lr, gamma, beta, p, scale)
    return OP.call(grad.contiguous(), x.contiguous(), r.contiguous(), theta.contiguous(), exp_avg.contiguous(),
                   exp_avg_sq.contiguous(), int(step), float(lr), float(gamma), float(beta), int(p), float(scale))
