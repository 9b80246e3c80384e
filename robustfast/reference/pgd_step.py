"""Plain-PyTorch definition of one projected-gradient step and of the random start.

`pgd_step` is the oracle every kernel is tested against:

    L∞:  x' = x + α·sign(g)
    L2:  x' = x + α·g / (‖g‖₂ + 1e-10)
    then δ = x' − x₀ projected onto the ε-ball (clip for L∞, rescale to ‖δ‖₂ ≤ ε for L2; δ = 0 stays 0),
    x' = clamp(x₀ + δ, lower, upper), and samples whose `active` flag is off keep x.

α and ε are per-sample tensors of shape (N,). The arithmetic runs in float32 (float64 for float64 data) and
rounds once to the dtype of `x`, as the kernels do: in half precision the gradient norm alone would overflow.
"""
import torch

from robustfast._util.checks import opmath_dtype

GRAD_NORM_EPS = 1e-10


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).view((-1,) + (1,) * (like.dim() - 1))


def pgd_step(x, grad, x0, active, alpha, eps, norm: str, lower: float, upper: float) -> torch.Tensor:
    dtype = x.dtype
    compute = opmath_dtype(dtype)
    x, grad, x0 = x.to(compute), grad.to(compute), x0.to(compute)
    a, e = _per_sample(alpha, x), _per_sample(eps, x)
    if norm == "Linf":
        stepped = x + a * grad.sign()
        delta = torch.minimum(torch.maximum(stepped - x0, -e), e)
    elif norm == "L2":
        n = x.shape[0]
        g_norm = grad.reshape(n, -1).norm(p=2, dim=1) + GRAD_NORM_EPS
        stepped = x + a * (grad / _per_sample(g_norm, x))
        delta = stepped - x0
        d_norm = delta.reshape(n, -1).norm(p=2, dim=1)
        # min(ε/‖δ‖, 1), and 1 when δ vanishes (no rescaling needed), as the C++ kernel does: without the guard
        # ε = ‖δ‖ = 0 (e.g. α = ε = 0 from x = x₀) gives 0/0 = NaN.
        factor = torch.clamp(eps.to(x.dtype) / d_norm, max=1.0)
        factor = torch.where(d_norm == 0, torch.ones_like(factor), factor)
        delta = delta * _per_sample(factor, x)
    else:
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    out = torch.clamp(x0 + delta, lower, upper)
    return torch.where(_per_sample(active, x).bool(), out, x).to(dtype)


def pgd_random_init(x0, eps, norm: str, lower: float, upper: float, generator=None) -> torch.Tensor:
    """A start drawn uniformly from the ε-ball around x0 (L∞ cube or L2 ball), clamped to the bounds."""
    e = _per_sample(eps, x0)
    if norm == "Linf":
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        delta = (2 * u - 1) * e
    elif norm == "L2":
        n, d = x0.shape[0], x0[0].numel()
        direction = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        direction = direction / _per_sample(direction.reshape(n, -1).norm(p=2, dim=1), x0)
        radius = torch.rand(n, generator=generator, device=x0.device, dtype=x0.dtype) ** (1.0 / d)
        delta = direction * _per_sample(radius, x0) * e
    else:
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    return torch.clamp(x0 + delta, lower, upper)
