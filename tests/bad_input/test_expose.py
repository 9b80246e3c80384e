"""Bad input to EBYD: an empty clean set, models without BatchNorm given to RNP or ANP, unknown methods and
options, τ grids outside [0, 1], bad sweep grids: a ValueError naming the argument, before any training."""
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustfast.backdoor import calibrate_detection, detect_model, detect_models, expose, mmbd, neural_cleanse, rnp
from robustfast.backdoor.ebyd_setup import digits_setting
from robustfast.models import SmallCNN
from tests.bad_input.helpers import images, rejected


def data(n=8, seed=0):
    return TensorDataset(images(n, 3, 8, 8, seed), torch.arange(n) % 4)


def cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=4, in_channels=3, width=4)


def no_bn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))


EMPTY = TensorDataset(torch.empty(0, 3, 8, 8), torch.empty(0, dtype=torch.long))


@pytest.mark.parametrize("method", ["cul", "anp", "interpolate"])
def test_empty_clean_set(method):
    with rejected("clean_set", "empty"):
        expose(cnn(), EMPTY, method)


def test_empty_sets_elsewhere():
    with rejected("clean_set", "empty"):
        rnp(cnn(), EMPTY, test_set=data(), asr_set=data())
    with rejected("data", "empty"):
        neural_cleanse(cnn(), EMPTY)
    with rejected("eval_set", "empty"):
        detect_model(cnn(), data(), EMPTY, epochs=1)


def test_model_without_batchnorm_given_to_rnp_or_anp():
    with rejected("BatchNorm", "rnp"):
        rnp(no_bn(), data(), test_set=data(), asr_set=data())
    with rejected("BatchNorm", "anp"):
        expose(no_bn(), data(), "anp", eps=0.1)
    with rejected("BatchNorm", "magnitude-prune"):
        expose(no_bn(), data(), "magnitude-prune", s=0.5)


def test_unknown_method_and_option():
    with rejected("method", "cul"):
        expose(cnn(), data(), "unlearn")
    with rejected("eps", "cul"):
        expose(cnn(), data(), "cul", eps=0.3)
    with rejected("variant"):
        expose(cnn(), data(), "magnitude-prune", variant="l2")
    with rejected("optimizer"):
        expose(cnn(), data(), "cul", optimizer="rmsprop")


@pytest.mark.parametrize("taus", [(0.1, 1.5), (-0.1,), (), (float("nan"),), "0.2"])
def test_tau_grid_outside_unit_interval(taus):
    with rejected("taus"):
        rnp(cnn(), data(), test_set=data(), asr_set=data(), taus=taus)


@pytest.mark.parametrize("method,key", [("activation-prune", "p"), ("anp", "eps"), ("interpolate", "alpha"),
                                        ("magnitude-prune", "s")])
@pytest.mark.parametrize("grid", [1.2, (0.5, -0.1), ()])
def test_sweep_grid_outside_unit_interval(method, key, grid):
    with rejected(key):
        expose(cnn(), data(), method, **{key: grid})


@pytest.mark.parametrize("kwargs,name", [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
                                         ({"lr": float("nan")}, "lr"), ({"batch_size": 0}, "batch_size"),
                                         ({"stop_acc": 1.5}, "stop_acc"), ({"stop_acc": "0.1"}, "stop_acc")])
def test_cul_numbers(kwargs, name):
    with rejected(name):
        expose(cnn(), data(), "cul", **kwargs)


def test_non_finite_or_negative_data():
    bad = images(8, 3, 8, 8)
    bad[2, 0, 1, 1] = float("nan")
    with rejected("clean_set", "NaN"):
        expose(cnn(), TensorDataset(bad, torch.zeros(8, dtype=torch.long)), "cul")
    with rejected("asr_set", ">= 0"):
        expose(cnn(), data(), "interpolate", alpha=0.5, asr_set=TensorDataset(images(2), torch.tensor([0, -1])))


def test_other_arguments():
    with rejected("clean_set"):
        expose(cnn(), [(torch.rand(3, 8, 8), 0)] * 2, "cul")
    with rejected("seed"):
        expose(cnn(), data(), "cul", seed=-1)
    with rejected("classes"):
        neural_cleanse(cnn(), data(), classes=[7])
    with rejected("data images"):
        neural_cleanse(cnn(), TensorDataset(images(4) * 3, torch.zeros(4, dtype=torch.long)))
    with rejected("alpha"):
        mmbd(cnn(), (3, 8, 8), alpha=1.5)
    with rejected("shape"):
        mmbd(cnn(), (8, 8))
    with rejected("models"):
        detect_models([], data(), data())
    with rejected("threshold"):
        detect_model(cnn(), data(), data(), threshold=-1)
    with rejected("layer"):
        expose(cnn(), data(), "activation-prune", layer="features")


def test_calibration_arguments():
    with rejected("lrs"):
        calibrate_detection([cnn()], data(), data(), lrs=[])
    with rejected("lrs"):
        calibrate_detection([cnn()], data(), data(), lrs=[1e-3, -1.0])
    with rejected("lr", "lrs"):
        calibrate_detection([cnn()], data(), data(), lr=1e-3)
    with rejected("clean_set", "empty"):
        calibrate_detection([cnn()], EMPTY, data(), lrs=[1e-3])
    with rejected("arch"):
        digits_setting("badnets", arch="resnet-50")
