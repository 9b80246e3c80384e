"""token_cosine: the mean cosine similarity between two token maps per sample, with a closed-form backward.

The op robustfast::token_cosine (reference robustfast.reference.token_cosine, Triton kernels.token_cosine, C++
csrc/cpu/token_cosine.cpp) and its backward robustfast::token_cosine_backward, registered the same way. The
forward takes one pass over each row of a and b; the backward recomputes the row's norms and writes ∂J/∂a in one
more pass. `token_cosine_profile` is the batched no-grad form over stacked layers.
It reads no tensor values (no host sync): it runs inside an attack's step loop.
"""
from __future__ import annotations

import torch

from robustfast import _backend
from robustfast._util.checks import check_float_tensor, opmath_dtype
from robustfast.reference import token_cosine as reference

REDUCTIONS = reference.REDUCTIONS
SCHEMA = "(Tensor a, Tensor b, Tensor token_mask, str reduction) -> Tensor"
DTYPES = (torch.float32, torch.float64)


def _fake(a, b, token_mask, reduction):
    return a.new_empty(a.shape[0], dtype=opmath_dtype(a.dtype))


def _fake_backward(grad, a, b, token_mask, reduction):
    return torch.empty_like(a, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1], inputs[2])
    ctx.reduction = inputs[3]


def _backward(ctx, grad):
    a, b, token_mask = ctx.saved_tensors
    with _backend.use_backend(_backend.backward_backend(ctx.backend, "token_cosine_backward")):
        grad_a = BACKWARD.call(grad.contiguous(), a, b, token_mask, ctx.reduction)
    return grad_a, None, None, None


def _samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    """Small shapes: a prime token count, D = 1, a 1023-wide row, a zero row (the η guard), both reductions,
    masks with tokens left out."""
    out = []
    for seed, ((bsz, t, d), reduction) in enumerate([((3, 17, 64), "token"), ((2, 5, 1023), "flat"),
                                                     ((4, 7, 2), "token"), ((5, 3, 37), "flat"),
                                                     ((2, 9, 13), "token")]):
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(bsz, t, d, generator=g, dtype=torch.float64)
        b = 0.5 * a + torch.randn(bsz, t, d, generator=g, dtype=torch.float64)
        if seed == 4:
            a[0, 2] = 0.0
        mask = torch.rand(t, generator=g) > (0.3 if seed % 2 else 0.0)
        out.append((a.to(device, dtype), b.to(device, dtype), mask.to(device), reduction))
    return out


def _backward_samples(device: torch.device, dtype: torch.dtype) -> list[tuple]:
    return [(torch.rand(args[0].shape[0], generator=torch.Generator().manual_seed(11), dtype=torch.float64)
             .to(device, opmath_dtype(dtype)) + 0.5, *args) for args in _samples(device, dtype)]


BACKWARD = _backend.register_op(
    "token_cosine_backward", "(Tensor grad, " + SCHEMA[1:], reference=reference.token_cosine_backward,
    fake=_fake_backward, triton="robustfast.kernels.token_cosine:token_cosine_bwd_triton", native=("cpp",),
    samples=_backward_samples, dtypes=DTYPES,
)
OP = _backend.register_op(
    "token_cosine", SCHEMA, reference=reference.token_cosine, fake=_fake,
    triton="robustfast.kernels.token_cosine:token_cosine_fwd_triton", native=("cpp",),
    backward=_backward, setup_context=_setup_context, samples=_samples, dtypes=DTYPES,
)


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_pair(a, b, rank: int, what: str):
    check_float_tensor(a, "a")
    if a.dim() != rank:
        raise ValueError(f"a must be {what} (rank {rank}), got shape {tuple(a.shape)}")
    if not isinstance(b, torch.Tensor) or b.shape != a.shape:
        got = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
        raise ValueError(f"b must have a's shape {tuple(a.shape)}, got {got}")
    if b.dtype != a.dtype or b.device != a.device:
        raise ValueError(f"b must match a's dtype and device ({a.dtype}, {a.device}), got ({b.dtype}, {b.device})")


def _mask(token_mask, t: int, device) -> torch.Tensor:
    if token_mask is None:
        return torch.ones(t, dtype=torch.bool, device=device)
    if not isinstance(token_mask, torch.Tensor) or token_mask.dtype != torch.bool or token_mask.shape != (t,):
        raise ValueError(f"token_mask must be a bool tensor of shape ({t},) (one flag per token)")
    return token_mask.to(device).contiguous()


def token_cosine(a: torch.Tensor, b: torch.Tensor, *, reduction: str = "token",
                 token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """J (B,): per sample, the mean over the tokens in `token_mask` (default all) of cos(a_t, b_t)
    (`reduction="token"`), or one cosine over the masked tokens flattened (`"flat"`). a, b: (B, T, D), same dtype;
    differentiable in a through the fused closed-form backward; b gets no gradient. float32 (float64 for float64
    inputs). An empty mask gives 0. Reads no tensor values."""
    _check_pair(a, b, 3, "B×T×D")
    check_reduction(reduction)
    return OP.call(a.contiguous(), b.detach().contiguous(), _mask(token_mask, a.shape[1], a.device), reduction)


@torch.no_grad()
def token_cosine_profile(a: torch.Tensor, b: torch.Tensor, *, reduction: str = "token",
                         token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L): token_cosine of each of L stacked layer pairs a, b of shape (L, B, T, D), in one call, without
    gradient (for the layer search and for monitoring)."""
    _check_pair(a, b, 4, "L×B×T×D")
    check_reduction(reduction)
    n_layers, bsz, t, d = a.shape
    out = OP.call(a.reshape(n_layers * bsz, t, d).contiguous(), b.reshape(n_layers * bsz, t, d).contiguous(),
                  _mask(token_mask, t, a.device), reduction)
    return out.view(n_layers, bsz).t()
