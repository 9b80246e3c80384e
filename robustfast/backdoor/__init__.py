"""Backdoor attacks: the trigger zoo, single and multi-trigger poisoning, backdoored training and evaluation;
and the Cognitive Distillation defense (CognitiveDistillation, detect).

    from robustfast.backdoor import poison, poison_test, train_backdoored, evaluate, make_trigger
"""
from robustfast.backdoor.base import Pixels, Trigger
from robustfast.backdoor.cd import CognitiveDistillation
from robustfast.backdoor.detect import DetectionReport, backdoor_test_set, detect
from robustfast.backdoor.evaluate import BackdoorReport, evaluate
from robustfast.backdoor.iad import InputAware
from robustfast.backdoor.poison import LABEL_MODES, MULTI_MODES, PoisonedDataset, poison, poison_test
from robustfast.backdoor.stack import apply_stacked
from robustfast.backdoor.train import train_backdoored
from robustfast.backdoor.triggers import (
    SIG,
    BadNets,
    Blend,
    FourCorner,
    Hybrid,
    Nashville,
    OnePixel,
    Smooth,
    Trojan,
    WaNet,
    make_trigger,
    trigger_names,
)

__all__ = ["LABEL_MODES", "MULTI_MODES", "SIG", "BackdoorReport", "BadNets", "Blend", "FourCorner", "Hybrid",
           "InputAware", "Nashville", "OnePixel", "Pixels", "PoisonedDataset", "Smooth", "Trigger", "Trojan", "WaNet",
           "apply_stacked", "evaluate", "make_trigger", "poison", "poison_test", "train_backdoored", "trigger_names"]
__all__ += ["CognitiveDistillation", "DetectionReport", "backdoor_test_set", "detect"]
