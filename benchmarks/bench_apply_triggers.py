"""pytest-benchmark: the apply_triggers op on a mixed batch of the eight pixel triggers, every backend of this
machine beside the reference, float32 N×C×H×W and uint8 N×H×W×C, same inputs.

    .venv/bin/python -m pytest benchmarks/bench_apply_triggers.py --benchmark-group-by=param:dtype
The Triton interpreter is not timed (it is a correctness tool); Triton rows appear on a GPU.
"""
import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.backdoor import make_trigger
from robustfast.backdoor.stack import pixel_table
from robustfast.bench.triggers import PIXEL_TRIGGERS, mixed_batch
from robustfast.ops import apply_triggers
from robustfast.reference.apply_triggers import compute_dtype, value_range

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BACKENDS = ["reference"] + [b for b in _backend.available(DEVICE)
                            if b in ("triton", "cpp") and not (b == "triton" and DEVICE.type == "cpu")]
N, SIZE = 256, 32


@pytest.fixture(scope="module", params=[torch.float32, torch.uint8], ids=str)
def inputs(request):
    dtype = request.param
    triggers = [make_trigger(name) for name in PIXEL_TRIGGERS]
    images, ids = mixed_batch(N, SIZE, len(triggers), DEVICE, uint8=dtype == torch.uint8)
    table = pixel_table(triggers, (3, SIZE, SIZE), value_range(dtype), compute_dtype(dtype), DEVICE)
    table.pop("fresh")
    return images, ids, table


@pytest.mark.parametrize("backend", BACKENDS)
def test_apply_triggers(benchmark, inputs, backend):
    images, ids, table = inputs
    benchmark.extra_info.update(device=str(DEVICE), dtype=str(images.dtype), shape=str(tuple(images.shape)),
                                backend=backend, triggers=len(PIXEL_TRIGGERS))

    def run():
        out = apply_triggers(images, ids, **table)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    with robustfast.use_backend(backend):
        benchmark(run)
