import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for the backdoor tests: their tiny convolutions gain nothing from two, and on a busy
    2-core machine two threads spin-wait for each other (about 20× slower there)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
