"""What the attacks must achieve on real data (digits, 3×16×16, SmallCNN of width 8: a few seconds of CPU each),
and the one-pass evaluation against per-loader evaluation."""
import pytest
import torch

from robustfast.backdoor import evaluate, poison, poison_test, train_backdoored
from robustfast.data import digits
from robustfast.models import SmallCNN
from robustfast.training import evaluate as accuracy

SIZE, WIDTH = 16, 8


@pytest.fixture(scope="module")
def splits():
    return digits("train", size=SIZE, channels=3), digits("test", size=SIZE, channels=3)


def backdoored(train_set, triggers, rate, label_mode, epochs):
    poisoned = poison(*train_set.tensors, triggers, rate=rate, label_mode=label_mode, seed=0)
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, in_channels=3, width=WIDTH)
    train_backdoored(model, poisoned, epochs=epochs, batch_size=64, lr=0.05, seed=0, progress=False)
    return model, poisoned


def test_badnets_all2one_at_10_percent(splits):
    train_set, test_set = splits
    model, _ = backdoored(train_set, "badnets", 0.1, "all2one", epochs=10)
    report = evaluate(model, test_set, "badnets")
    assert report.asr[0] >= 0.9, report.asr_table()
    assert report.clean_acc >= 0.9, report.asr_table()


def test_parallel_attack_with_four_triggers(splits):
    train_set, test_set = splits
    triggers = ["badnets", "blend", "sig", "trojan"]
    model, poisoned = backdoored(train_set, triggers, 0.1, "all2random", epochs=14)
    report = evaluate(model, test_set, triggers, label_mode="all2random")
    assert report.targets == poisoned.targets and len(set(report.targets)) == 4
    assert min(report.asr) >= 0.8, report.asr_table()
    assert report.clean_acc >= 0.8, report.asr_table()

    # Q's rows sum to 1, diag P is each trigger's ASR, and the fused pass equals one evaluation per loader.
    assert torch.allclose(report.cross.sum(1), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(report.pairwise.diagonal(), torch.tensor(report.asr, dtype=torch.float64))
    assert report.clean_acc == accuracy(model, test_set)
    loaders = poison_test(*test_set.tensors, triggers, label_mode="all2random")
    for k, loader in enumerate(loaders):
        assert report.asr[k] == accuracy(model, loader), triggers[k]
        assert report.counts[k + 1].sum() == len(loader)
