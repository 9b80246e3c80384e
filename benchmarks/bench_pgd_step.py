"""pytest-benchmark: the pgd_step op on every backend of this machine, beside the reference, same inputs.

    .venv/bin/python -m pytest benchmarks/bench_pgd_step.py --benchmark-group-by=param:norm
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import pgd_step

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if not (b == "triton" and DEVICE.type == "cpu")]


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator(device=DEVICE).manual_seed(0)
    shape = (128, 3, 32, 32)
    x0 = torch.rand(shape, generator=g, device=DEVICE)
    x = (x0 + 0.01 * torch.randn(shape, generator=g, device=DEVICE)).clamp(0, 1)
    return x, torch.randn(shape, generator=g, device=DEVICE), x0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_step(benchmark, inputs, backend, norm):
    x, grad, x0 = inputs
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape="128x3x32x32", backend=backend)

    def step():
        out = pgd_step(x, grad, x0, alpha=2 / 255, eps=8 / 255, norm=norm)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    with robustfast.use_backend(backend):
        benchmark(step)
