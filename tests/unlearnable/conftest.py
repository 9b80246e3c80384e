import pytest

from robustfast.data import digits


@pytest.fixture(scope="session")
def tiny_digits():
    """96 real digits at 3×32×32 from the training split, with their labels."""
    images, labels = digits("train", size=32, channels=3).tensors
    return images[:96].clone(), labels[:96].clone()
