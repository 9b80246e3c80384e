"""A tiny setting for invariant tests: 96 real digits, a 4-wide CNN, batches of 32, 3 steps."""
import torch

from robustfast.models import SmallCNN

TINY = {"batch_size": 32, "steps": 3, "train_steps": 2, "progress": False}


def tiny_model(seed: int = 0, width: int = 4) -> SmallCNN:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SmallCNN(num_classes=10, in_channels=3, width=width)
