import os

import torch

# Triton reads TRITON_INTERPRET when kernels are decorated: set it before anything imports Triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

from robustfast import _backend

DEVICES = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
DEVICE_BACKENDS = [pytest.param(d, b, id=f"{d.type}-{b}") for d in DEVICES for b in _backend.available(d)]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
