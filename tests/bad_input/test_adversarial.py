"""train_adversarial and evaluate_robustness reject bad input at entry with a ValueError naming the argument."""
import pytest
import torch
from torch.utils.data import TensorDataset

from robustfast.attacks import APGD, evaluate_robustness
from robustfast.models import SmallCNN
from robustfast.training import train_adversarial


def model():
    torch.manual_seed(0)
    return SmallCNN(width=4)


def data(n=16, shape=(3, 8, 8)):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -0.1}, "eps"),
    ({"steps": 0}, "steps"),
    ({"method": "free-at"}, "method"),
    ({"beta": float("nan")}, "beta"),
    ({"ema": 1.5}, "ema"),
    ({"schedule": "linear"}, "schedule"),
    ({"val_split": 16}, "val_split"),
])
def test_train_adversarial_arguments(kwargs, match):
    kw = {"method": "pgd-at", "epochs": 1, "batch_size": 8, "val_split": 0, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        train_adversarial(model(), data(), **kw)


@pytest.mark.parametrize("dataset,match", [
    (data(shape=(64,)), "dataset images must be a float N×C×H×W"),
    (TensorDataset(torch.rand(4, 3, 8, 8) * 2, torch.zeros(4, dtype=torch.long)), r"\[0, 1\]"),
    (TensorDataset(torch.rand(4, 3, 8, 8), torch.zeros(4)), "dataset labels"),
    ((torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)), "TensorDataset"),
])
def test_train_adversarial_dataset(dataset, match):
    with pytest.raises(ValueError, match=match):
        train_adversarial(model(), dataset, epochs=1, val_split=0, progress=False)


def test_world_size_that_does_not_divide_the_batch(monkeypatch):
    import robustfast.training.adversarial as adversarial

    monkeypatch.setattr(adversarial, "world", lambda: (0, 3))
    with pytest.raises(ValueError, match="batch_size 16 must be divisible by the world size 3"):
        train_adversarial(model(), data(), batch_size=16, epochs=1, val_split=0, progress=False)


@pytest.mark.parametrize("kwargs,match", [
    ({"attacks": ("clean", "fgsm")}, "attacks"),
    ({"attacks": "pgd20"}, "attacks"),
    ({"eps": -1.0}, "eps"),
    ({"batch_size": 0}, "batch_size"),
])
def test_evaluate_robustness_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate_robustness(model(), data().tensors, progress=False, **kwargs)


def test_evaluate_robustness_data():
    images, labels = data().tensors
    with pytest.raises(ValueError, match="data images"):
        evaluate_robustness(model(), (images[:, 0], labels), progress=False)
    with pytest.raises(ValueError, match="data labels must lie"):
        evaluate_robustness(model(), (images, labels + 10), ("clean",), progress=False)


def test_apgd_arguments():
    for kwargs, match in (({"eps": -0.1}, "eps"), ({"steps": 0}, "steps"), ({"loss": "dlr"}, "loss"),
                          ({"compact_every": 0}, "compact_every"), ({"chunk": 0}, "chunk")):
        with pytest.raises(ValueError, match=match):
            APGD(model(), **kwargs)
