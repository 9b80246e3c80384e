"""Adversarial attacks and their evaluation. New attacks subclass `Attack` (see robustfast.attacks.base)."""
from robustfast.attacks.apgd import APGD
from robustfast.attacks.base import Attack
from robustfast.attacks.dta import DTA
from robustfast.attacks.evaluate import robust_accuracy, transfer_asr
from robustfast.attacks.loss import attack_loss, margin
from robustfast.attacks.pgd import PGD
from robustfast.attacks.robustness import ATTACKS, evaluate_robustness, format_report

__all__ = ["APGD", "ATTACKS", "DTA", "PGD", "Attack", "attack_loss", "evaluate_robustness", "format_report", "margin",
           "robust_accuracy", "transfer_asr"]
