"""train_adversarial: the lr rules, every method on a tiny model, resume, selection, and data parallelism (two gloo
ranks on the CPU against one rank over the same global batches); evaluate_robustness sharded the same way."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from robustfast.attacks import evaluate_robustness
from robustfast.data import digits
from robustfast.models import SmallCNN
from robustfast.training import train_adversarial
from robustfast.training.adversarial import lr_factor

KW = {"eps": 0.1, "alpha": 0.03, "steps": 2, "epochs": 2, "batch_size": 16, "lr": 0.05, "val_split": 0,
      "progress": False}


def small_set(n=48):
    images, labels = digits("train", size=8, channels=3).tensors
    return TensorDataset(images[:n].contiguous(), labels[:n].contiguous())


class NoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def build(kind):
    torch.manual_seed(0)
    return NoBN() if kind == "nobn" else SmallCNN(width=4)


def test_lr_rules():
    assert [lr_factor("piecewise", e, 100) for e in (0, 74, 75, 89, 90, 99)] == [1, 1, 0.1, 0.1, 0.01, 0.01]
    assert lr_factor("cosine", 0, 400) == 1.0 and abs(lr_factor("cosine", 200, 400) - 0.5) < 1e-12


@pytest.mark.parametrize("method", ["pgd-at", "trades", "mart", "fgsm-rs"])
def test_every_method_trains_and_changes_the_weights(method):
    model = build("bn")
    before = [p.detach().clone() for p in model.parameters()]
    result = train_adversarial(model, small_set(), method, **{**KW, "epochs": 1})
    assert len(result["history"]) == 1 and torch.isfinite(torch.tensor(result["history"][0]["loss"]))
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_resume_gives_the_uninterrupted_run_and_selection_keeps_the_best(tmp_path):
    kw = {**KW, "epochs": 3, "val_split": 16, "ema": 0.9}
    fresh = build("bn")
    want = train_adversarial(fresh, small_set(), "trades", **kw)
    # Interrupt after epoch 2 by running the first two epochs of a 3-epoch run, then resume to 3.
    first = build("bn")
    first_result = _two_of_three(first, kw, tmp_path / "run")
    assert len(first_result["history"]) == 2
    again = build("bn")
    got = train_adversarial(again, small_set(), "trades", **kw, checkpoint_dir=tmp_path / "run")
    assert [h["loss"] for h in got["history"]] == pytest.approx([h["loss"] for h in want["history"]], rel=1e-5)
    assert got["selected_epoch"] == want["selected_epoch"]
    scores = {h["epoch"]: h["val_pgd20"] for h in want["history"] if "val_pgd20" in h}
    assert want["selected_epoch"] == max(scores, key=lambda e: (scores[e], -e))
    for a, b in zip(again.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def _two_of_three(model, kw, directory):
    """Epochs 1–2 of a 3-epoch run, stopped by an exception from the third epoch's first batch."""
    import robustfast.training.adversarial as adversarial

    real = adversarial._epoch

    def epoch(*args, **kwargs):
        if args[8] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    adversarial._epoch = epoch
    try:
        train_adversarial(model, small_set(), "trades", **kw, checkpoint_dir=directory)
    except KeyboardInterrupt:
        pass
    finally:
        adversarial._epoch = real
    from robustfast.training import load_checkpoint

    return load_checkpoint(directory)[1]


def _runs(rank=0):
    out = {}
    for kind, method in (("nobn", "pgd-at"), ("bn", "trades")):
        model = build(kind)
        result = train_adversarial(model, small_set(), method, **{**KW, "augment": True})
        out[kind] = ({k: v.detach().clone() for k, v in model.state_dict().items()},
                     [h["loss"] for h in result["history"]])
    images, labels = small_set(20).tensors
    out["eval"] = evaluate_robustness(build("bn").eval(), (images, labels), ("clean", "pgd20", "cw", "apgd-ce"),
                                      eps=0.1, batch_size=8, apgd_steps=5, progress=False)
    return out


def _worker(rank, init_file, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        results[rank] = _runs(rank)
    finally:
        dist.destroy_process_group()


def test_two_ranks_train_and_evaluate_as_one(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    one = _runs()
    for rank in (0, 1):
        two = results[rank]
        weights, _ = two["nobn"]
        for name, value in one["nobn"][0].items():  # no BatchNorm: the same weights to float tolerance
            assert torch.allclose(weights[name], value, rtol=1e-4, atol=1e-5), name
        # BatchNorm normalises each rank's half batch: the loss curve stays within 5% of the one-rank run.
        assert two["bn"][1] == pytest.approx(one["bn"][1], rel=0.05)
        assert two["eval"]["accuracy"] == one["eval"]["accuracy"]
        assert two["eval"]["robust"] == one["eval"]["robust"]

