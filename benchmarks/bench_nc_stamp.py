"""pytest-benchmark: Neural Cleanse's stamp for K = 10 classes over a batch of 64 images (3×32×32), forward and
backward: the nc_stamp op on every backend of this machine beside autograd through the reference broadcast.

    .venv/bin/python -m pytest benchmarks/bench_nc_stamp.py
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import nc_stamp
from robustfast.reference import nc_stamp as reference

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if b != "reference" and not (b == "triton" and DEVICE.type == "cpu")]
B, C, H, W, K = 64, 3, 32, 32, 10


def _inputs():
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.rand(B, C, H, W, generator=g, device=DEVICE)
    mask = torch.rand(K, H, W, generator=g, device=DEVICE).requires_grad_(True)
    pattern = torch.rand(K, C, H, W, generator=g, device=DEVICE).requires_grad_(True)
    grad = torch.randn(K * B, C, H, W, generator=g, device=DEVICE)
    return x, mask, pattern, grad


def _timed(benchmark, fn, impl: str):
    x, mask, pattern, grad = _inputs()
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{K}x{B}x{C}x{H}x{W}", impl=impl)

    def step():
        mask.grad = pattern.grad = None
        fn(x, mask, pattern).backward(grad)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    benchmark(step)


def test_reference_broadcast(benchmark):
    _timed(benchmark, reference.nc_stamp, "reference")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused(benchmark, backend):
    with robustfast.use_backend(backend):
        _timed(benchmark, nc_stamp, f"fused ({backend})")
