import json
import math
import time

import pytest
import torch

from robustfast.data import digits, synthetic
from robustfast.models import SmallCNN, WideResNet
from robustfast._util.schedules import epoch_lr_factor as lr_factor
from robustfast.training import evaluate, train_classifier


class Interrupt(Exception):
    pass


class NoisyAugment:
    """Adds noise from torch's global RNG (so resuming must restore it); counts batches; can interrupt."""

    def __init__(self, stop_at=None, noise=0.05):
        self.calls, self.stop_at, self.noise = 0, stop_at, noise

    def __call__(self, x):
        if self.calls == self.stop_at:
            raise Interrupt
        self.calls += 1
        return (x + self.noise * torch.randn_like(x)).clamp(0, 1) if self.noise else x


def small_data():
    x, y = digits("train").tensors
    return torch.utils.data.TensorDataset(x[:256], y[:256])


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("build", [lambda: SmallCNN(in_channels=1),
                                   lambda: WideResNet((1, 1, 1), (1, 1, 1), in_channels=1)],
                         ids=["small_cnn", "wrn_1_1_1"])
def test_digits_reaches_90_percent(build):
    torch.manual_seed(0)
    model = build()
    t0 = time.perf_counter()
    history = train_classifier(model, digits("train"), epochs=5, batch_size=64, lr=0.05, progress=False)
    seconds = time.perf_counter() - t0
    acc = evaluate(model, digits("test"))
    print(f"digits 8x8: test accuracy {acc:.3f} after {seconds:.1f} s of training")
    assert [h["epoch"] for h in history] == list(range(1, 6))
    assert history[-1]["loss"] < history[0]["loss"]
    assert acc >= 0.9


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    data = small_data()
    steps = math.ceil(len(data) / 32)
    kw = {"epochs": 3, "batch_size": 32, "lr": 0.05, "seed": 5, "progress": False}

    torch.manual_seed(0)
    reference = SmallCNN(in_channels=1, width=8)
    train_classifier(reference, data, augment=NoisyAugment(), **kw)

    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, width=8)
    with pytest.raises(Interrupt):  # dies in the first batch of epoch 3
        train_classifier(model, data, augment=NoisyAugment(stop_at=2 * steps), checkpoint_dir=tmp_path, **kw)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["state"]["epoch"] == 2

    torch.manual_seed(0)
    resumed = SmallCNN(in_channels=1, width=8)
    augment = NoisyAugment()
    history = train_classifier(resumed, data, augment=augment, checkpoint_dir=tmp_path, **kw)
    assert augment.calls == steps  # one epoch, not three
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert states_equal(resumed, reference)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 and not list(tmp_path.glob("*.tmp"))

    augment = NoisyAugment()
    assert len(train_classifier(resumed, data, augment=augment, checkpoint_dir=tmp_path, **kw)) == 3
    assert augment.calls == 0 and states_equal(resumed, reference)


def test_extending_a_finished_run(tmp_path):
    data = small_data()
    kw = {"batch_size": 32, "lr": 0.05, "schedule": "constant", "seed": 1, "progress": False}
    torch.manual_seed(0)
    reference = SmallCNN(in_channels=1, width=8)
    train_classifier(reference, data, epochs=3, **kw)

    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, width=8)
    train_classifier(model, data, epochs=2, checkpoint_dir=tmp_path, **kw)
    augment = NoisyAugment(noise=0)
    train_classifier(model, data, epochs=3, checkpoint_dir=tmp_path, augment=augment, **kw)
    assert augment.calls == math.ceil(len(data) / 32)
    assert states_equal(model, reference)


def test_any_dataset_trains_like_a_tensor_dataset():
    data = synthetic(40, shape=(1, 8, 8))
    models = []
    for dataset in (data, torch.utils.data.Subset(data, range(len(data)))):
        torch.manual_seed(0)
        models.append(SmallCNN(in_channels=1, width=4))
        train_classifier(models[-1], dataset, epochs=2, batch_size=16, progress=False)
    assert states_equal(*models)


def test_resume_refuses_other_settings(tmp_path):
    data = synthetic(16, shape=(1, 8, 8))
    train_classifier(SmallCNN(in_channels=1, width=4), data, epochs=1, batch_size=8, checkpoint_dir=tmp_path,
                     progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train_classifier(SmallCNN(in_channels=1, width=4), data, epochs=2, batch_size=4,
                         checkpoint_dir=tmp_path, progress=False)


def test_seed_fixes_the_run_and_leaves_the_global_rng_alone():
    data = synthetic(32, shape=(1, 8, 8))
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(SmallCNN(in_channels=1, width=4))
        before = torch.get_rng_state()
        train_classifier(models[-1], data, epochs=1, batch_size=8, augment=NoisyAugment(), seed=7,
                         progress=False)
        assert torch.equal(torch.get_rng_state(), before)
    assert states_equal(*models)


def test_options_run(tmp_path):
    data = synthetic(16, shape=(1, 8, 8))
    history = train_classifier(SmallCNN(in_channels=1, width=4), data, epochs=2, batch_size=8,
                               schedule="step", amp=True, channels_last=True, grad_clip=1.0, progress=True)
    assert len(history) == 2 and math.isfinite(history[-1]["loss"])


@pytest.mark.parametrize("kind", ["ce", "nce+rce", "ngce+mae", "fl"])
def test_robust_losses_train(kind):
    from robustfast.losses import MODULES

    data = synthetic(32, shape=(1, 8, 8))
    model = SmallCNN(in_channels=1, width=4)
    before = [p.detach().clone() for p in model.parameters()]
    history = train_classifier(model, data, epochs=2, batch_size=8, loss=MODULES[kind](num_classes=10),
                               progress=False)
    assert all(math.isfinite(h["loss"]) for h in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_lr_factor():
    assert lr_factor("cosine", 0, 10) == 1 and lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert [lr_factor("step", e, 100) for e in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor("constant", 7.5, 10) == 1


@pytest.mark.parametrize("mode", [True, False])
def test_evaluate_restores_mode_and_counts(mode):
    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, width=4).train(mode)
    data = synthetic(50, shape=(1, 8, 8))
    acc = evaluate(model, data, batch_size=16)
    assert model.training == mode
    x, y = data.tensors
    model.eval()
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(expected)
    assert evaluate(model, torch.utils.data.DataLoader(data, batch_size=7)) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs,name", [
    ({"epochs": 0}, "epochs"), ({"epochs": 2.5}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"), ({"lr": -0.1}, "lr"), ({"schedule": "linear"}, "schedule"),
    ({"grad_clip": 0}, "grad_clip"), ({"seed": -1}, "seed"),
])
def test_bad_arguments(kwargs, name):
    args = {"epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        train_classifier(SmallCNN(in_channels=1, width=4), synthetic(8, shape=(1, 8, 8)), progress=False,
                         **args)


def test_evaluate_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(SmallCNN(), synthetic(4), batch_size=0)
