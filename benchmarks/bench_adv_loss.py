"""pytest-benchmark: the TRADES and MART losses, forward + backward in both logits, the fused adv_loss op on every
backend of this machine beside the published composition (F.kl_div on log-softmax / softmax) through autograd,
same logits (B = 8192, K = 10, 100).

    .venv/bin/python -m pytest benchmarks/bench_adv_loss.py --benchmark-group-by=param:kind
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch
import torch.nn.functional as F

import robustfast
from robustfast import _backend
from robustfast.ops import adv_loss

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = [b for b in _backend.available(DEVICE) if not (b == "triton" and DEVICE.type == "cpu")]
BATCH = 8192


def _inputs(k: int):
    g = torch.Generator(device=DEVICE).manual_seed(k)
    nat = (3 * torch.randn(BATCH, k, generator=g, device=DEVICE)).requires_grad_(True)
    adv = (nat.detach() + torch.randn(BATCH, k, generator=g, device=DEVICE)).requires_grad_(True)
    return nat, adv, torch.randint(0, k, (BATCH,), generator=g, device=DEVICE)


def published(kind, nat, adv, y, beta=6.0):
    if kind == "trades":
        return F.cross_entropy(nat, y) + beta * F.kl_div(F.log_softmax(adv, 1), F.softmax(nat, 1),
                                                         reduction="sum") / len(y)
    q = F.softmax(adv, 1)
    top2 = torch.argsort(q, 1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    p = F.softmax(nat, 1)
    kl = F.kl_div(torch.log(q + 1e-12), p, reduction="none").sum(1)
    return (F.cross_entropy(adv, y) + F.nll_loss(torch.log(1.0001 - q + 1e-12), new_y)
            + beta * (kl * (1.0000001 - p.gather(1, y[:, None]).squeeze(1))).mean())


def _timed(benchmark, loss_fn, nat, adv, impl, kind, k):
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{BATCH}x{k}", impl=impl, kind=kind)

    def step():
        nat.grad = adv.grad = None
        loss_fn().backward()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    benchmark(step)


@pytest.mark.parametrize("kind", ["trades", "mart"])
@pytest.mark.parametrize("k", [10, 100])
def test_published_composition(benchmark, kind, k):
    nat, adv, y = _inputs(k)
    _timed(benchmark, lambda: published(kind, nat, adv, y), nat, adv, "published composition", kind, k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["trades", "mart"])
@pytest.mark.parametrize("k", [10, 100])
def test_fused(benchmark, backend, kind, k):
    nat, adv, y = _inputs(k)
    with robustfast.use_backend(backend):
        _timed(benchmark, lambda: adv_loss(nat, adv, y, kind).mean(), nat, adv, f"fused ({backend})", kind, k)
