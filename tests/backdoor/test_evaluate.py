"""evaluate() on a hand-made backdoored model, so every count is known without training."""
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from robustfast.backdoor import evaluate, poison_test
from robustfast.training import evaluate as accuracy


class GridDetector(nn.Module):
    """Predicts `target` (or y+1 via the label smuggled in the first pixel) when the BadNets grid is present, and
    the smuggled label otherwise: a perfectly clean, perfectly backdoored classifier."""

    def __init__(self, target):
        super().__init__()
        self.target = target
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x):
        label = (x[:, 0, 0, 0] * 10).round().long()
        corner = x[:, 0, -3:, -3:]
        grid = torch.tensor([[0, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=x.dtype)
        stamped = (corner == grid).flatten(1).all(1)
        want = (label + 1) % 10 if self.target is None else torch.full_like(label, self.target)
        return nn.functional.one_hot(torch.where(stamped, want, label), 10).float() + 0 * self.anchor


@pytest.fixture(scope="module")
def test_set():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 10
    images = 0.1 + 0.8 * torch.rand(60, 3, 12, 12, generator=g)
    images[:, 0, 0, 0] = labels / 10  # the detector reads the true label here
    return TensorDataset(images, labels)


def test_counts_asr_and_cross_activation(test_set):
    report = evaluate(GridDetector(target=0), test_set, ["badnets", "sig"], target=0, batch_size=25)
    assert report.clean_acc == 1.0
    assert report.asr[0] == 1.0, "BadNets images all go to the target"
    assert report.asr[1] == 0.0, "SIG images carry no grid, and the SIG set holds no target-class image"
    assert report.counts[1].sum() == 54 and report.counts[1, 0] == 54  # 60 minus the 6 target-class images
    assert torch.allclose(report.cross.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.equal(report.pairwise, torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
    assert report.clean_acc == accuracy(GridDetector(0), test_set)
    per_loader = [accuracy(GridDetector(0), s) for s in poison_test(*test_set.tensors, ["badnets", "sig"])]
    assert per_loader == report.asr
    assert "badnets" in report.asr_table() and "sig" in report.cross_table()


def test_all2all_targets_follow_the_label(test_set):
    report = evaluate(GridDetector(target=None), test_set, "badnets", label_mode="all2all")
    assert report.targets == [None] and report.pairwise is None
    assert report.asr == [1.0] and report.counts[1].sum() == 60


def test_explicit_targets_and_their_checks(test_set):
    report = evaluate(GridDetector(target=3), test_set, ["badnets", "badnets"], targets=[3, 0])
    assert report.asr[0] == 1.0 and report.asr[1] == 0.0
    with pytest.raises(ValueError, match="targets"):
        evaluate(GridDetector(target=3), test_set, ["badnets"], targets=[3, 0])
    with pytest.raises(ValueError, match="unknown trigger name"):
        evaluate(GridDetector(target=3), test_set, ["badnetz"])
