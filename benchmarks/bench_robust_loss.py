"""pytest-benchmark: NCE+RCE forward + backward, the fused robust_loss op on every backend of this machine beside
autograd through the reference composition, same logits (B = 8192, K = 10, 100, 1000).

    .venv/bin/python -m pytest benchmarks/bench_robust_loss.py --benchmark-group-by=param:k
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import robust_loss
from robustfast.reference import robust_loss as reference

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if b != "reference" and not (b == "triton" and DEVICE.type == "cpu")]
BATCH = 8192


def _logits(k: int):
    g = torch.Generator(device=DEVICE).manual_seed(k)
    logits = (3 * torch.randn(BATCH, k, generator=g, device=DEVICE)).requires_grad_(True)
    return logits, torch.randint(0, k, (BATCH,), generator=g, device=DEVICE)


def _timed(benchmark, loss_fn, logits, labels, impl: str, k: int):
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{BATCH}x{k}", impl=impl)

    def step():
        logits.grad = None
        loss_fn().mean().backward()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    benchmark(step)


@pytest.mark.parametrize("k", [10, 100, 1000])
def test_reference_composition(benchmark, k):
    logits, labels = _logits(k)
    _timed(benchmark, lambda: reference.robust_loss(logits, labels, "nce+rce", 1.0, 1.0), logits, labels,
           "reference", k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [10, 100, 1000])
def test_fused(benchmark, backend, k):
    logits, labels = _logits(k)
    with robustfast.use_backend(backend):
        _timed(benchmark, lambda: robust_loss(logits, labels, "nce+rce"), logits, labels, f"fused ({backend})", k)
