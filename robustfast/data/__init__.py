"""Datasets without a network: scikit-learn digits, CIFAR-10 from local python batches, synthetic tensors."""
from robustfast.data.images import cifar10, digits, digits_split, loader, synthetic

__all__ = ["cifar10", "digits", "digits_split", "loader", "synthetic"]
