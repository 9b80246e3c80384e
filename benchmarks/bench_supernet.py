"""pytest-benchmark: forward_children (P children in one batched pass) against one child at a time, and
segmented_batch_norm fwd+bwd per backend against its reference. The ratio table is `robustfast bench nas`.

    .venv/bin/python -m pytest benchmarks/bench_supernet.py
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.nas import SearchSpace, Supernet
from robustfast.ops import segmented_batch_norm

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if not (b == "triton" and DEVICE.type == "cpu")]


@pytest.fixture(scope="module")
def setup():
    space = SearchSpace()
    torch.manual_seed(0)
    net = Supernet(space, C=16, layers=5).to(DEVICE)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 16, 16, generator=gen).to(DEVICE)
    return net, x, [space.random(gen) for _ in range(8)]


@pytest.mark.parametrize("mode", ["batched", "one_at_a_time"])
def test_child_evaluations(benchmark, setup, mode):
    net, x, children = setup
    benchmark.extra_info.update(device=str(DEVICE), shape="5 cells, C=16, b=16, 16x16, P=8", backend=mode)
    with torch.no_grad():
        if mode == "batched":
            benchmark(lambda: net.forward_children(x, children))
        else:
            benchmark(lambda: [net(x, c) for c in children])


@pytest.mark.parametrize("backend", BACKENDS)
def test_segmented_batch_norm(benchmark, backend):
    x = torch.randn(64 * 8, 16, 16, 16, generator=torch.Generator().manual_seed(0)).to(DEVICE).requires_grad_()
    g = torch.randn_like(x)
    benchmark.extra_info.update(device=str(DEVICE), shape="(512, 16, 16, 16), segments of 64", backend=backend)

    def step():
        with robustfast.use_backend(backend):
            return torch.autograd.grad(segmented_batch_norm(x, 64), x, g)

    benchmark(step)
