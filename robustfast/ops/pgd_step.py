"""pgd_step: one fused step of a projected-gradient attack, and the random start of the attack.

The op robustfast::pgd_step (see robustfast._backend for what registration gives): reference
robustfast.reference.pgd_step, Triton kernels.pgd_step, C++ csrc/cpu/pgd_step.cpp, CUDA csrc/cuda/pgd_step_cuda.cpp.
No autograd: the step is applied to a detached input. `pgd_step` reads no tensor values (no host sync): it runs
inside an attack's step loop. `check_step_values` (one batched host read) is what its caller runs once, at entry;
`pgd_random_init`, which runs once per attack, runs it itself.
"""
from __future__ import annotations

import torch

from robustfast import _backend
from robustfast._util.checks import check_bounds, check_float_tensor, check_like, opmath_dtype, per_sample
from robustfast.reference import pgd_step as reference

NORMS = ("Linf", "L2")
# The largest alpha/eps accepted. Both are lengths in the data's units, where anything past the box [lower, upper]
# is already unbounded; a larger one can overflow float32 (‖α·g/‖g‖‖² in the L2 projection, or the number itself).
MAX_RADIUS = 1e18


def _fake(x, grad, x0, active, alpha, eps, norm, lower, upper):
    return torch.empty_like(x)


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Arguments of robustfast::pgd_step for the registry tests: odd, prime and 1023-long rows, both norms."""
    out = []
    for seed, (shape, norm) in enumerate([((7, 3, 11, 13), "Linf"), ((1, 1023), "L2"), ((5, 17), "Linf"),
                                          ((13, 3, 8, 8), "L2"), ((2, 3, 37, 41), "L2")]):
        g = torch.Generator().manual_seed(seed)
        n, op = shape[0], opmath_dtype(dtype)
        x0 = torch.rand(shape, generator=g, dtype=torch.float64)
        x = (x0 + 0.03 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        grad = torch.randn(shape, generator=g, dtype=torch.float64)
        alpha, eps = 0.005 + 0.05 * torch.rand(n, generator=g), 0.01 + 0.1 * torch.rand(n, generator=g)
        active = torch.rand(n, generator=g) > 0.25
        out.append((*(t.to(device, dtype) for t in (x, grad, x0)), active.to(device), alpha.to(device, op),
                    eps.to(device, op), norm, 0.0, 1.0))
    return out


OP = _backend.register_op(
    "pgd_step",
    "(Tensor x, Tensor grad, Tensor x0, Tensor active, Tensor alpha, Tensor eps, str norm, float lower, "
    "float upper) -> Tensor",
    reference=reference.pgd_step, fake=_fake, triton="robustfast.kernels.pgd_step:pgd_step_triton",
    native=("cpp", "cuda"), auto={"cpu": ("cpp",), "cuda": ("triton", "cuda")},
    samples=_samples, dtypes=(torch.float32, torch.float64, torch.bfloat16, torch.float16),
)


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


def check_step_values(x0: torch.Tensor, *, x: torch.Tensor | None = None, alpha=None, eps=None) -> None:
    """The value checks `pgd_step` leaves to its caller, in one batched host read: `x0` (and `x`) hold no NaN or
    inf, and per-sample `alpha`/`eps` tensors lie in [0, MAX_RADIUS] (numbers are checked by `pgd_step` itself,
    without a read). A ValueError names the first argument that fails. Call it once where an attack starts,
    never inside its step loop."""
    named = [("x0", x0), ("x", x)]
    checks = [(name, ~torch.isfinite(t.detach()).all()) for name, t in named if isinstance(t, torch.Tensor)]
    for name, v in (("alpha", alpha), ("eps", eps)):
        if isinstance(v, torch.Tensor) and v.numel():
            v = v.detach()
            checks.append((name, ~((v >= 0) & (v <= MAX_RADIUS)).all()))  # False for NaN too
    if not checks:
        return
    device = checks[0][1].device
    bad = torch.stack([flag.to(device) for _, flag in checks]).tolist()
    for (name, _), b in zip(checks, bad, strict=True):
        if b:
            what = f"values in [0, {MAX_RADIUS:g}]" if name in ("alpha", "eps") else "no NaN or inf"
            raise ValueError(f"{name} must hold {what}, got a tensor that does not")


def pgd_step(x: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, *, alpha, eps, norm: str = "Linf",
             active: torch.Tensor | None = None, lower: float = 0.0, upper: float = 1.0) -> torch.Tensor:
    """One projected-gradient step, fused: step along sign(grad) (L∞) or grad/‖grad‖₂ (L2), project onto the
    ε-ball around `x0`, clamp to [lower, upper]; samples whose `active` flag is False keep `x`.

    x, grad, x0: same shape N×..., same dtype. alpha, eps: numbers or per-sample tensors of shape (N,).
    active: bool tensor (N,), default all True. Returns a new tensor in x's memory layout (contiguous or
    channels_last); the inputs are not modified.

    Checks, and who does them. This op runs inside an attack's step loop, so it reads no tensor values (no host
    read, no GPU sync). It checks types, shapes, dtypes, devices, `norm`, the bounds, and numbers given for
    `alpha`/`eps`: a Python number that is NaN, negative, infinite or above MAX_RADIUS is a ValueError, with no
    host read. The caller checks values once, at its entry, with `check_step_values(x0, x=x, alpha=alpha,
    eps=eps)` (one batched host read): NaN or inf in `x`/`x0`, and per-sample `alpha`/`eps` tensors outside
    [0, MAX_RADIUS]. Unchecked, such values give non-finite or backend-dependent results. `grad` is not checked
    (it is made inside the loop): a NaN entry is a zero step under L∞ (sign(NaN) = 0) and NaN under L2.
    `PGD` and `pgd_random_init` run the value checks for you.
    """
    check_float_tensor(x, "x")
    check_like(grad, x, "grad", "x")
    check_like(x0, x, "x0", "x")
    if x.dim() < 1:
        raise ValueError("x must have a leading sample dimension")
    _check_norm(norm)
    check_bounds(lower, upper)
    n, dtype = x.shape[0], opmath_dtype(x.dtype)
    alpha = per_sample(alpha, n, "alpha", dtype, x.device, maximum=MAX_RADIUS)
    eps = per_sample(eps, n, "eps", dtype, x.device, maximum=MAX_RADIUS)
    if active is None:
        active = torch.ones(n, dtype=torch.bool, device=x.device)
    elif not isinstance(active, torch.Tensor) or active.dtype != torch.bool or active.shape != (n,):
        raise ValueError(f"active must be a bool tensor of shape ({n},)")
    return OP.call(*_shared_layout(x, grad, x0), active.contiguous(), alpha, eps, norm, float(lower), float(upper))


def pgd_random_init(x0: torch.Tensor, *, eps, norm: str = "Linf", lower: float = 0.0, upper: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """A random start drawn uniformly from the ε-ball around x0 (the L∞ cube, or the L2 ball), clamped.

    Sampling uses torch's RNG on every backend, so a seeded generator gives the same start everywhere.
    It runs once per attack, so it checks values too (one batched host read): x0 finite, a per-sample `eps`
    tensor in [0, MAX_RADIUS]; each failure is a ValueError naming the argument.
    """
    check_float_tensor(x0, "x0")
    if x0.dim() < 1:
        raise ValueError("x0 must have a leading sample dimension")
    _check_norm(norm)
    check_bounds(lower, upper)
    eps = per_sample(eps, x0.shape[0], "eps", opmath_dtype(x0.dtype), x0.device, maximum=MAX_RADIUS)
    check_step_values(x0, eps=eps)
    if x0.numel() == 0:
        return x0.clone()
    return reference.pgd_random_init(x0, eps, norm, float(lower), float(upper), generator)
