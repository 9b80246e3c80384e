"""Unlearnable examples: error-minimizing noise (sample-wise, class-wise) and the unlearnable data set."""
from robustfast.unlearnable.apply import make_unlearnable, to_uint8
from robustfast.unlearnable.io import load_unlearnable, save_unlearnable
from robustfast.unlearnable.report import NoiseReport
from robustfast.unlearnable.search import error_minimizing_noise

__all__ = ["NoiseReport", "error_minimizing_noise", "load_unlearnable", "make_unlearnable", "save_unlearnable",
           "to_uint8"]
