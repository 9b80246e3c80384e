import os

import pytest
import torch

from robustfast.data import digits


@pytest.fixture(scope="session")
def tiny_digits():
    """96 real digits at 3×32×32 from the training split, with their labels."""
    images, labels = digits("train", size=32, channels=3).tensors
    return images[:96].clone(), labels[:96].clone()


@pytest.fixture(autouse=True, scope="module")
def one_thread_when_oversubscribed():
    """On an oversubscribed machine (load above the core count) torch's OpenMP threads wait on each other: the
    small convolutions here ran 3-10× slower with 2 threads than with 1. Use one thread then, per test module
    (module scope, so that module-scoped fixtures such as a trained model run under it too); restore after."""
    threads = torch.get_num_threads()
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
