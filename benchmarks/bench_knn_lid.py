"""pytest-benchmark: knn_lid (self, k = 20) on every backend of this machine beside cdist + topk, same points.

    .venv/bin/python -m pytest benchmarks/bench_knn_lid.py --benchmark-group-by=param:n
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU. The large CPU run
(N = 100,000, where cdist cannot go) is `robustfast bench lid`.
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import knn_lid
from robustfast.reference import knn_lid as reference

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if b != "cuda" and not (b == "triton" and DEVICE.type == "cpu")]
K = 20


def points(n: int, d: int = 64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(n)).to(DEVICE)


def _sync(out):
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [2000, 8000])
def test_knn_lid(benchmark, backend, n):
    x = points(n)
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{n}x64, k={K}", backend=backend)
    with robustfast.use_backend(backend):
        benchmark(lambda: _sync(knn_lid(x, k=K)))


@pytest.mark.parametrize("n", [2000, 8000])
def test_cdist_topk(benchmark, n):
    x = points(n)
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{n}x64, k={K}", peer="cdist + topk")
    benchmark(lambda: _sync(reference.knn_lid(x, x, [K], "literature", 0)))
