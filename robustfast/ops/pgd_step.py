"""pgd_step: one fused step of a projected-gradient attack, and the random start of the attack."""
from __future__ import annotations

import torch

from robustfast import _backend
from robustfast._util.checks import check_bounds, check_float_tensor, check_like, opmath_dtype, per_sample
from robustfast.reference import pgd_step as reference

NORMS = ("Linf", "L2")


@torch.library.triton_op("robustfast::pgd_step_triton", mutates_args=())
def _pgd_step_triton(x: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, active: torch.Tensor,
                     alpha: torch.Tensor, eps: torch.Tensor, norm: str, lower: float, upper: float) -> torch.Tensor:
    from robustfast.kernels.pgd_step import pgd_step_triton

    return pgd_step_triton(x, grad, x0, active, alpha, eps, norm, lower, upper)


if _backend.extension() is not None:

    @torch.library.register_fake("robustfast::pgd_step")
    def _(x, grad, x0, active, alpha, eps, norm, lower, upper):
        return torch.empty_like(x)


def _shared_layout(x, grad, x0):
    """x, grad and x0 in one dense layout where each sample is a contiguous block, so kernels walk storage flat:
    x's own layout when it is such (contiguous or channels_last), else the contiguous one."""
    if not (x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))):
        return x.contiguous(), grad.contiguous(), x0.contiguous()
    grad, x0 = (t if t.stride() == x.stride() else torch.empty_like(x).copy_(t) for t in (grad, x0))
    return x, grad, x0


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def pgd_step(x: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, *, alpha, eps, norm: str = "Linf",
             active: torch.Tensor | None = None, lower: float = 0.0, upper: float = 1.0) -> torch.Tensor:
    """One projected-gradient step, fused: step along sign(grad) (L∞) or grad/‖grad‖₂ (L2), project onto the
    ε-ball around `x0`, clamp to [lower, upper]; samples whose `active` flag is False keep `x`.

    x, grad, x0: same shape N×..., same dtype. alpha, eps: numbers or per-sample tensors of shape (N,).
    active: bool tensor (N,), default all True. Returns a new tensor in x's memory layout (contiguous or
    channels_last); the inputs are not modified.
    """
    check_float_tensor(x, "x")
    check_like(grad, x, "grad", "x")
    check_like(x0, x, "x0", "x")
    if x.dim() < 1:
        raise ValueError("x must have a leading sample dimension")
    _check_norm(norm)
    check_bounds(lower, upper)
    n, dtype = x.shape[0], opmath_dtype(x.dtype)
    alpha = per_sample(alpha, n, "alpha", dtype, x.device)
    eps = per_sample(eps, n, "eps", dtype, x.device)
    if active is None:
        active = torch.ones(n, dtype=torch.bool, device=x.device)
    elif not isinstance(active, torch.Tensor) or active.dtype != torch.bool or active.shape != (n,):
        raise ValueError(f"active must be a bool tensor of shape ({n},)")
    args = (*_shared_layout(x, grad, x0), active.contiguous(), alpha, eps, norm, float(lower), float(upper))
    backend = _backend.choose("pgd_step", x.device, ("triton", "cuda", "cpp"))
    if backend == "reference":
        return reference.pgd_step(*args)
    if backend == "triton":
        return torch.ops.robustfast.pgd_step_triton(*args)
    return torch.ops.robustfast.pgd_step(*args)


def pgd_random_init(x0: torch.Tensor, *, eps, norm: str = "Linf", lower: float = 0.0, upper: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """A random start drawn uniformly from the ε-ball around x0 (the L∞ cube, or the L2 ball), clamped.

    Sampling uses torch's RNG on every backend, so a seeded generator gives the same start everywhere.
    """
    check_float_tensor(x0, "x0")
    _check_norm(norm)
    check_bounds(lower, upper)
    eps = per_sample(eps, x0.shape[0], "eps", opmath_dtype(x0.dtype), x0.device)
    return reference.pgd_random_init(x0, eps, norm, float(lower), float(upper), generator)
