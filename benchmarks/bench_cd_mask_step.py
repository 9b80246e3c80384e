"""pytest-benchmark: cd_mask_blend and cd_mask_step on every backend of this machine, beside the reference, on the
same inputs (100 images, 3×32×32, one mask channel: the reference batch of Cognitive Distillation).

    .venv/bin/python -m pytest benchmarks/bench_cd_mask_step.py --benchmark-group-by=func
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import cd_mask_blend, cd_mask_step

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if not (b == "triton" and DEVICE.type == "cpu")]


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.rand(100, 3, 32, 32, generator=g, device=DEVICE)
    theta = torch.randn(100, 1, 32, 32, generator=g, device=DEVICE)
    r = torch.rand(100, 3, generator=g, device=DEVICE)
    grad = torch.randn(100, 3, 32, 32, generator=g, device=DEVICE) / 100
    return x, theta, r, grad


def _timed(benchmark, backend, fn):
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape="100x3x32x32", backend=backend)

    def run():
        out = fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    with robustfast.use_backend(backend):
        benchmark(run)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cd_mask_blend(benchmark, inputs, backend):
    x, theta, r, _ = inputs
    _timed(benchmark, backend, lambda: cd_mask_blend(theta, x, r))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cd_mask_step(benchmark, inputs, backend):
    x, theta, r, grad = inputs
    moments = torch.zeros_like(theta), torch.full_like(theta, 1e-6)
    _timed(benchmark, backend, lambda: cd_mask_step(grad, x, r, theta, *moments, step=3, lr=0.1, gamma=0.01,
                                                    beta=1.0))
