"""The unlearnable-examples recipe on the built-in digits (3×32×32), shared by the CLI, the demo and the tests.

Settings are the spec's (ε = 8/255, α = 0.8/255, 20 steps sample-wise and 1 class-wise, 10 θ steps per round,
stop error 0.01, SGD 0.1 / 0.9 / 5e-4, grad-norm clip 5) with two changes for a 1,438-image set: the surrogate is
a 4-wide small CNN, and class-wise batches hold 64 images (the 20 % subset has about 290 images, fewer than one
drop-last batch of 512). The victim is an 8-wide small CNN trained from scratch without augmentation (SGD 0.1,
batch 32, cosine): 8 epochs take it past 90 % on the clean digits.
"""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from robustfast.data import digits
from robustfast.models import SmallCNN
from robustfast.training import evaluate, train_classifier
from robustfast.unlearnable.apply import make_unlearnable
from robustfast.unlearnable.report import NoiseReport
from robustfast.unlearnable.search import error_minimizing_noise

BATCH_SIZE = {"samplewise": 512, "classwise": 64}
SURROGATE_WIDTH, VICTIM_WIDTH = 4, 8


def digits_sets(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(train, test) digits at 3×32×32."""
    return digits("train", size=32, channels=3, seed=seed), digits("test", size=32, channels=3, seed=seed)


def surrogate(seed: int = 0) -> SmallCNN:
    """A freshly initialised surrogate, fixed by `seed`."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SmallCNN(num_classes=10, in_channels=3, width=SURROGATE_WIDTH)


def digits_noise(train_set: TensorDataset, kind: str = "samplewise", *, max_rounds: int = 30, seed: int = 0,
                 device="cpu", checkpoint_dir=None, progress: bool = True,
                 **settings) -> tuple[torch.Tensor, NoiseReport]:
    """Error-minimizing noise for the digits training set, on `device`; `settings` override the recipe."""
    images, labels = (t.to(device) for t in train_set.tensors)
    settings = {"batch_size": BATCH_SIZE[kind], **settings}
    return error_minimizing_noise(surrogate(seed).to(device), images, labels, kind, max_rounds=max_rounds,
                                  seed=seed, checkpoint_dir=checkpoint_dir, progress=progress, **settings)


def unlearnable_set(train_set: TensorDataset, noise: torch.Tensor, kind: str, **options) -> TensorDataset:
    """The training set with the noise applied (class-wise noise by label); options go to make_unlearnable."""
    images, labels = train_set.tensors
    noise = noise.to(images.device)
    x = make_unlearnable(images, noise, labels if kind == "classwise" else None, **options)
    return TensorDataset(x, labels)


def victim_accuracy(train_set: TensorDataset, test_set: TensorDataset, *, epochs: int = 8, seed: int = 0,
                    device="cpu", progress: bool = False) -> float:
    """Clean test accuracy of a fresh small CNN trained on `train_set` (SGD 0.1, batch 32, cosine)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN(num_classes=10, in_channels=3, width=VICTIM_WIDTH).to(device)
    train_classifier(model, train_set, epochs=epochs, batch_size=32, lr=0.1, seed=seed, device=device,
                     progress=progress)
    return evaluate(model, test_set, device=device)
