"""Datasets without a network: scikit-learn digits, CIFAR-10 from local python batches, synthetic tensors."""
from robustfast.data.images import cifar10, digits, digits_split, loader, synthetic
from robustfast.data.noise import noisy_labels

__all__ = ["cifar10", "digits", "digits_split", "loader", "noisy_labels", "synthetic"]
