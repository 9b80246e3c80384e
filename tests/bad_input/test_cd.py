"""Cognitive Distillation and detect: every bad argument is a ValueError naming it."""
import pytest
import torch

from robustfast.backdoor import CognitiveDistillation, detect, poison
from robustfast.models import SmallCNN


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SmallCNN(num_classes=10, in_channels=3, width=4)


def images(n=4):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("x,match", [
    (images() * 2, "images must lie in"),
    (images() - 0.5, "images must lie in"),
    (torch.full((2, 3, 8, 8), float("nan")), "images contains NaN"),
    (torch.rand(3, 8, 8), "images must be N×C×H×W"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.int64), "images must be a floating-point"),
])
def test_bad_images(model, x, match):
    with pytest.raises(ValueError, match=match):
        CognitiveDistillation(model, steps=1)(x)


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"),
    ({"gamma": -0.1}, "gamma"), ({"beta": -1.0}, "beta"), ({"mode": "pixels"}, "mode"),
    ({"mode": "features", "feature_layer": "layer9"}, "feature_layer"), ({"p": 3}, "p must"),
    ({"mask_channels": 0}, "mask_channels"), ({"preprocess": 3}, "preprocess"), ({"gamma": float("nan")}, "gamma"),
])
def test_bad_settings(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CognitiveDistillation(model, **kwargs)


def test_mask_channels_must_match_the_images(model):
    with pytest.raises(ValueError, match="mask_channels"):
        CognitiveDistillation(model, steps=1, mask_channels=2)(images())


def test_detect_rejects_a_poison_mask_of_the_wrong_length(model):
    with pytest.raises(ValueError, match="poison_mask must have length 4"):
        detect(model, images(), poison_mask=torch.zeros(5, dtype=torch.bool), steps=1, progress=False)
    with pytest.raises(ValueError, match="poison_mask must be a bool"):
        detect(model, images(), poison_mask=torch.zeros(4), steps=1, progress=False)
    with pytest.raises(ValueError, match="method"):
        detect(model, images(), method="strip", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        detect(model, images(), batch_size=0, progress=False)


def test_detect_takes_the_mask_from_a_poisoned_dataset(model):
    x = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    poisoned = poison(x, torch.arange(40) % 10, "badnets", rate=0.1)
    report = detect(model, poisoned, steps=2, progress=False)
    assert torch.equal(report.poison_mask, poisoned.trigger_ids >= 0)
    assert report.auroc is not None and 0 <= report.tpr <= 1 and 0 <= report.fpr <= 1
