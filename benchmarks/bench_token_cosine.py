"""pytest-benchmark: token_cosine forward + backward, the fused op on every backend of this machine beside
F.cosine_similarity(...).mean(-1) + autograd, same inputs, at the digits ViT's (64, 17, 64) and ViT-B's
(256, 197, 768).

    .venv/bin/python -m pytest benchmarks/bench_token_cosine.py --benchmark-group-by=param:shape
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch
import torch.nn.functional as F

import robustfast
from robustfast import _backend
from robustfast.ops import token_cosine

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available_for("token_cosine", DEVICE)
            if b != "reference" and not (b == "triton" and DEVICE.type == "cpu")]
SHAPES = [(64, 17, 64), (256, 197, 768)]


def _pair(shape):
    g = torch.Generator(device=DEVICE).manual_seed(sum(shape))
    a = torch.randn(shape, generator=g, device=DEVICE).requires_grad_(True)
    return a, torch.randn(shape, generator=g, device=DEVICE)


def _timed(benchmark, fn, a, impl, shape):
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape="x".join(map(str, shape)), impl=impl)

    def step():
        a.grad = None
        fn().sum().backward()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    benchmark(step)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cosine_similarity_autograd(benchmark, shape):
    a, b = _pair(shape)
    _timed(benchmark, lambda: F.cosine_similarity(a, b, dim=-1, eps=1e-8).mean(-1), a, "torch", shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fused(benchmark, shape, backend):
    a, b = _pair(shape)

    def fused():
        with robustfast.use_backend(backend):
            return token_cosine(a, b)

    _timed(benchmark, fused, a, f"fused ({backend})", shape)
