"""Adversarial attacks and their evaluation. New attacks subclass `Attack` (see robustfast.attacks.base)."""
from robustfast.attacks.base import Attack
from robustfast.attacks.dta import DTA
from robustfast.attacks.evaluate import robust_accuracy, transfer_asr
from robustfast.attacks.loss import attack_loss, margin
from robustfast.attacks.pgd import PGD

__all__ = ["DTA", "PGD", "Attack", "attack_loss", "margin", "robust_accuracy", "transfer_asr"]
