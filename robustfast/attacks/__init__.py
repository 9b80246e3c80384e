"""Adversarial attacks and their evaluation."""
from robustfast.attacks.evaluate import robust_accuracy
from robustfast.attacks.pgd import PGD

__all__ = ["PGD", "robust_accuracy"]
