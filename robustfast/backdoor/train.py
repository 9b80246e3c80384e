"""Train a model on a poisoned dataset with the shared training loop."""
from __future__ import annotations

from torch import nn

from robustfast.backdoor.poison import PoisonedDataset
from robustfast.training import train_classifier


def train_backdoored(model: nn.Module, poisoned: PoisonedDataset, epochs: int = 10, batch_size: int = 64,
                     lr: float = 0.05, **kwargs) -> list[dict]:
    """robustfast.training.train_classifier on the poisoned images and labels (the triggers are already in the
    images, as in the reference code, where they are applied when the dataset is built). Extra keyword arguments
    (momentum, weight_decay, schedule, augment, checkpoint_dir, seed, device, amp, ...) go to train_classifier.
    Returns the per-epoch history."""
    if not isinstance(poisoned, PoisonedDataset):
        raise ValueError(f"poisoned must be a PoisonedDataset from robustfast.backdoor.poison, got "
                         f"{type(poisoned).__name__}")
    return train_classifier(model, poisoned, epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
