"""The digits setting of the EBYD reproduction: a defense set of clean training images held out from a BadNets
(or other trigger) all-to-one poisoned training set, a SmallCNN trained on the rest, the clean test set and the
triggered test set (every test image not of the target class, labelled with the target). Used by the CLI, the
demo, the benchmark and the efficacy tests, so that they all measure the same thing."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustfast._util.seeds import stream_generator
from robustfast.backdoor.poison import poison, poison_test
from robustfast.backdoor.train import train_backdoored
from robustfast.data import digits
from robustfast.training import train_classifier
from robustfast._util.checks import require
from robustfast.models import SmallCNN, WideResNet

ARCHS = ("smallcnn", "wrn-10-1")


@dataclasses.dataclass
class Setting:
    model: nn.Module
    defense: TensorDataset  # clean training images held out from the poisoned set
    test: TensorDataset     # clean test set
    asr: TensorDataset | None  # triggered test images labelled with the target (None for a clean model)
    target: int


def digits_setting(trigger: str | None = "badnets", *, seed: int = 0, size: int = 16, width: int = 8,
                   epochs: int = 10, rate: float = 0.1, target: int = 0, defense: int = 200,
                   device="cpu", data_seed: int = 0, arch: str = "smallcnn", lr: float = 0.05) -> Setting:
    """Train a model on digits (3×size×size) minus `defense` held-out images, poisoned by `trigger` at `rate`
    all-to-one toward `target` (trigger=None: a clean model trained the same way): arch "smallcnn" is
    SmallCNN(width) (three conv-BN-ReLU units), "wrn-10-1" the small ResNet WideResNet((1, 1, 1), (1, 1, 1))
    (`width` unused), the model for 3×32×32, where SmallCNN's receptive field is too small. SGD `lr`, momentum
    0.9, wd 5e-4, cosine, batch 64, `epochs`. `seed` seeds the poisoning and the model; `data_seed` the defense
    split, so models of different seeds share their data."""
    require("arch", arch, arch in ARCHS, f"one of {', '.join(ARCHS)}")
    train, test = digits("train", size=size, channels=3), digits("test", size=size, channels=3)
    x, y = train.tensors
    order = torch.randperm(len(y), generator=stream_generator(data_seed, 41))
    held, rest = order[:defense], order[defense:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "smallcnn":
            model = SmallCNN(num_classes=10, in_channels=3, width=width)
        else:
            model = WideResNet((1, 1, 1), (1, 1, 1), num_classes=10, in_channels=3)
        model = model.to(device)
    if trigger is None:
        train_classifier(model, TensorDataset(x[rest], y[rest]), epochs=epochs, batch_size=64, lr=lr, seed=seed,
                         progress=False)
        asr = None
    else:
        poisoned = poison(x[rest], y[rest], trigger, rate=rate, target=target, seed=seed)
        train_backdoored(model, poisoned, epochs=epochs, batch_size=64, lr=lr, seed=seed, progress=False)
        asr = poison_test(*test.tensors, trigger, target=target, seed=seed)[0]
    return Setting(model, TensorDataset(x[held], y[held]), test, asr, target)
