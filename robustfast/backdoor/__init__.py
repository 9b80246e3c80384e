"""Backdoor attacks: the trigger zoo, single and multi-trigger poisoning, backdoored training and evaluation;
and the Cognitive Distillation defense (CognitiveDistillation, detect).

    from robustfast.backdoor import poison, poison_test, train_backdoored, evaluate, make_trigger
    from robustfast.backdoor import expose, detect_label, detect_model, neural_cleanse, mmbd, rnp   (EBYD)
"""
from robustfast.backdoor.base import Pixels, Trigger
from robustfast.backdoor.cd import CognitiveDistillation
from robustfast.backdoor.detect import DetectionReport, backdoor_test_set, detect
from robustfast.backdoor.evaluate import BackdoorReport, evaluate
from robustfast.backdoor.expose import METHODS as EXPOSE_METHODS
from robustfast.backdoor.expose import Exposure, detect_label, expose
from robustfast.backdoor.expose_detect import (
    Calibration,
    ModelDetection,
    calibrate_detection,
    detect_model,
    detect_models,
)
from robustfast.backdoor.iad import InputAware
from robustfast.backdoor.mmbd import MMBDResult, mmbd
from robustfast.backdoor.neural_cleanse import CleanseResult, neural_cleanse
from robustfast.backdoor.poison import LABEL_MODES, MULTI_MODES, PoisonedDataset, poison, poison_test
from robustfast.backdoor.rnp import RNPResult, rnp
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

__all__ = [
    "EXPOSE_METHODS",
    "LABEL_MODES",
    "MULTI_MODES",
    "SIG",
    "BackdoorReport",
    "BadNets",
    "Blend",
    "Calibration",
    "CleanseResult",
    "CognitiveDistillation",
    "DetectionReport",
    "Exposure",
    "FourCorner",
    "Hybrid",
    "InputAware",
    "MMBDResult",
    "ModelDetection",
    "Nashville",
    "OnePixel",
    "Pixels",
    "PoisonedDataset",
    "RNPResult",
    "Smooth",
    "Trigger",
    "Trojan",
    "WaNet",
    "apply_stacked",
    "backdoor_test_set",
    "calibrate_detection",
    "detect",
    "detect_label",
    "detect_model",
    "detect_models",
    "evaluate",
    "expose",
    "make_trigger",
    "mmbd",
    "neural_cleanse",
    "poison",
    "poison_test",
    "rnp",
    "train_backdoored",
    "trigger_names",
]
