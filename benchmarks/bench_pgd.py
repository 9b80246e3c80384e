"""pytest-benchmark: PGD-10 L∞ with robustfast, the reference loop, and torchattacks when installed,
on the same PreActResNet18 and inputs. `robustfast bench pgd` runs the full table (with ART) and saves it.

    .venv/bin/python -m pytest benchmarks/bench_pgd.py --benchmark-group-by=group
"""
import pytest
import torch

from robustfast.attacks import PGD
from robustfast.models import PreActResNet18
from robustfast.attacks.published import pgd_attack

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BATCH = 128 if DEVICE.type == "cuda" else 32
EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = PreActResNet18().to(DEVICE).eval()
    images = torch.rand(BATCH, 3, 32, 32, device=DEVICE)
    with torch.no_grad():
        labels = model(images).argmax(1)
    return model, images, labels


def _attacks(model):
    yield "robustfast", PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS)
    yield "reference loop", lambda x, y: pgd_attack(model, x, y, EPS, ALPHA, STEPS)
    try:
        import torchattacks
    except ImportError:
        return
    yield "torchattacks", torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)


@pytest.mark.benchmark(group="pgd10")
@pytest.mark.parametrize("impl", ["robustfast", "reference loop", "torchattacks"])
def test_pgd10(benchmark, setup, impl):
    model, images, labels = setup
    attacks = dict(_attacks(model))
    if impl not in attacks:
        pytest.skip(f"{impl} is not installed")
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{BATCH}x3x32x32", peer=impl)
    attack = attacks[impl]

    def run():
        adv = attack(images, labels)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return adv

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
