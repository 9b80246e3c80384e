"""pytest-benchmark: one round of the sample-wise error-minimizing noise search (10 θ steps, 20 noise steps over the
set, the stop test) with robustfast (default, and exact=True) and with the loop written the published way, same
surrogate, data and settings.
`robustfast bench unlearnable` runs both to the stop test on 10,000 images and saves the table.

    .venv/bin/python -m pytest benchmarks/bench_unlearnable.py --benchmark-group-by=group
"""
import pytest
import torch

from robustfast.bench.unlearnable import surrogate, tiled_digits
from robustfast.unlearnable.published import error_minimizing_noise_reference
from robustfast.unlearnable import error_minimizing_noise

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
N = 4096 if DEVICE.type == "cuda" else 512
SETTINGS = {"batch_size": 128, "steps": 20, "train_steps": 10, "max_rounds": 1, "stop_error": 0.0}


@pytest.fixture(scope="module")
def data():
    images, labels = tiled_digits(N)
    return images.to(DEVICE), labels.to(DEVICE)


@pytest.mark.benchmark(group="unlearnable-round")
@pytest.mark.parametrize("impl", ["robustfast", "robustfast exact", "reference loop"])
def test_one_round(benchmark, data, impl):
    images, labels = data
    benchmark.extra_info.update(device=str(DEVICE), dtype="float32", shape=f"{N}x3x32x32", peer=impl,
                                surrogate="SmallCNN width 16")

    def run():
        model = surrogate("smallcnn").to(DEVICE)
        if impl.startswith("robustfast"):
            noise, _ = error_minimizing_noise(model, images, labels, progress=False, exact=impl.endswith("exact"),
                                              **SETTINGS)
        else:
            noise, _ = error_minimizing_noise_reference(model, images, labels, **SETTINGS)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return noise

    noise = benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    assert noise.abs().max() <= 8 / 255
