"""Parity of robustfast.attacks.PGD with torchattacks and with the textbook reference loop."""
import pytest
import torch
from torch import nn

import robustfast
from robustfast.attacks import PGD
from robustfast.attacks.published import pgd_attack
from tests.conftest import DEVICE_BACKENDS


def small_cnn(seed=0, classes=10):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64, classes),
    ).eval()


def batch(n=24, seed=1, classes=10):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("norm,peer,eps,alpha", [("Linf", "PGD", 8 / 255, 2 / 255), ("L2", "PGDL2", 0.5, 0.1)])
def test_matches_torchattacks(device, backend, norm, peer, eps, alpha):
    torchattacks = pytest.importorskip("torchattacks")
    model = small_cnn().to(device)
    images, labels = (t.to(device) for t in batch())
    theirs = getattr(torchattacks, peer)(model, eps=eps, alpha=alpha, steps=10, random_start=False)(images, labels)
    with robustfast.use_backend(backend):
        ours = PGD(model, eps=eps, alpha=alpha, steps=10, norm=norm, random_start=False)(images, labels)
    assert (ours - theirs).abs().max().item() <= 1e-5


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("norm,loss,targeted", [("Linf", "ce", False), ("L2", "cw", False), ("Linf", "cw", True)])
def test_matches_reference_loop_with_random_start(device, backend, norm, loss, targeted):
    model = small_cnn().to(device)
    images, labels = (t.to(device) for t in batch())
    eps, alpha = (8 / 255, 2 / 255) if norm == "Linf" else (0.5, 0.1)
    with robustfast.use_backend(backend):
        ours = PGD(model, eps=eps, alpha=alpha, steps=5, norm=norm, loss=loss, targeted=targeted, seed=3)(
            images, labels)
    expected = pgd_attack(model, images, labels, eps, alpha, 5, norm, True, targeted, loss,
                          generator=torch.Generator(device=device).manual_seed(3))
    assert (ours - expected).abs().max().item() <= 1e-5
