"""train_classifier on bad data and on corrupt checkpoints: named rejections, never NaN weights without a word."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Subset, TensorDataset

from robustfast.models import SmallCNN
from robustfast.training import evaluate, load_checkpoint, train_classifier
from tests.bad_input.helpers import rejected

KW = {"batch_size": 8, "lr": 0.05, "schedule": "constant", "seed": 1, "progress": False}


def data(n=16, seed=0, classes=10):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g))


def model():
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, width=4)


def with_images(x, y=None):
    base = data()
    return TensorDataset(x, base.tensors[1] if y is None else y)


def corrupt(kind):
    x, y = data().tensors
    x = x.clone()
    if kind == "nan":
        x[5, 0, 1, 1] = math.nan
    elif kind == "inf":
        x[3, 0, 2, 2] = math.inf
    return TensorDataset(x, y)


@pytest.mark.parametrize(("train_set", "names", "kind"), [
    (None, ["train_set", "Dataset"], TypeError),
    (42, ["train_set"], TypeError),
    (TensorDataset(torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)), ["train_set", "non-empty"], ValueError),
    (with_images(data().tensors[0].double()), ["train_set", "float64", "float32"], ValueError),
    (with_images((data().tensors[0] * 255).long()), ["train_set", "floating-point"], ValueError),
    (with_images(data().tensors[0][:, 0]), ["train_set", "do not fit the model"], ValueError),
    (with_images(data().tensors[0].repeat(1, 3, 1, 1)), ["train_set", "do not fit the model"], ValueError),
    (with_images(data().tensors[0], torch.full((16,), 10)), ["labels", "[0, 10)"], ValueError),
    (with_images(data().tensors[0], torch.full((16,), -1)), ["labels", ">= 0"], ValueError),
    (with_images(data().tensors[0], torch.rand(16)), ["labels", "integer"], ValueError),
    (corrupt("nan"), ["train_set", "image 5", "NaN"], ValueError),
    (corrupt("inf"), ["train_set", "image 3", "NaN or inf"], ValueError),
])
def test_bad_train_sets_are_named(train_set, names, kind):
    with rejected(*names, kind=kind):
        train_classifier(model(), train_set, epochs=1, **KW)


def test_labels_out_of_range_in_any_dataset_are_named():
    x = data().tensors[0]
    bad = Subset(TensorDataset(x, torch.full((16,), 12)), range(16))
    with rejected("labels", "[0, 10)", "epoch 1, batch 0"):
        train_classifier(model(), bad, epochs=1, **KW)


def test_meta_model_is_named():
    with torch.device("meta"):
        meta = SmallCNN(in_channels=1, width=4)
    with rejected("meta"):
        train_classifier(meta, data(), epochs=1, **KW)


def test_evaluate_rejects_none():
    with rejected("data", kind=TypeError):
        evaluate(model(), None)


def test_meta_images_are_named():
    meta = TensorDataset(torch.empty(16, 1, 8, 8, device="meta"), torch.empty(16, dtype=torch.long, device="meta"))
    with rejected("train_set", "meta"):
        train_classifier(model(), meta, epochs=1, **KW)


@pytest.mark.parametrize("x", [data().tensors[0].double(), data().tensors[0][:, 0],
                               data().tensors[0].repeat(1, 3, 1, 1)])
def test_evaluate_names_images_that_do_not_fit_the_model(x):
    with rejected("data", "do not fit the model"):
        evaluate(model(), TensorDataset(x, data().tensors[1]))


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_nonfinite_images_stop_training_and_keep_the_last_good_checkpoint(tmp_path, kind):
    net = model()
    train_classifier(net, data(), epochs=1, checkpoint_dir=tmp_path, **KW)
    good = {k: v.clone() for k, v in net.state_dict().items()}
    bad = Subset(corrupt(kind), range(16))  # not a TensorDataset: only the loss can show it
    with rejected("epoch 2, batch", "NaN or inf", "last good checkpoint (epoch 1)"):
        train_classifier(net, bad, epochs=2, checkpoint_dir=tmp_path, **KW)
    tensors, state = load_checkpoint(tmp_path)
    assert state["epoch"] == 1
    assert all(torch.equal(tensors[f"model.{k}"], v) for k, v in good.items())
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def _trained(tmp_path, epochs=1):
    train_classifier(model(), data(), epochs=epochs, checkpoint_dir=tmp_path, **KW)
    index = json.loads((tmp_path / "checkpoint.json").read_text())
    return index, tmp_path / index["tensors"]


def test_resume_rejects_nan_weights(tmp_path):
    _, tensor_file = _trained(tmp_path)
    tensors = load_file(str(tensor_file))
    tensors["model.fc.weight"][0, 0] = math.nan
    save_file(tensors, str(tensor_file))
    with rejected("model.fc.weight", "NaN or inf", str(tmp_path)):
        train_classifier(model(), data(), epochs=2, checkpoint_dir=tmp_path, **KW)


@pytest.mark.parametrize(("edit", "names"), [
    (lambda s: s.update(epoch=5), ["checkpoint.json", "'epoch'"]),
    (lambda s: s.update(epoch=0), ["checkpoint.json", "'epoch'"]),
    (lambda s: s.update(epoch="1"), ["checkpoint.json", "'epoch'"]),
    (lambda s: s.pop("history"), ["checkpoint.json", "'history'"]),
    (lambda s: s.pop("settings"), ["checkpoint.json", "'settings'"]),
    (lambda s: s.pop("optimizer"), ["checkpoint.json", "'optimizer'"]),
])
def test_resume_rejects_a_corrupt_state(tmp_path, edit, names):
    index, _ = _trained(tmp_path)
    edit(index["state"])
    (tmp_path / "checkpoint.json").write_text(json.dumps(index))
    with rejected(*names):
        train_classifier(model(), data(), epochs=2, checkpoint_dir=tmp_path, **KW)


def test_resume_with_fewer_epochs_than_done_is_named(tmp_path):
    _trained(tmp_path, epochs=2)
    with rejected("epochs=1", "finished 2 epochs"):
        train_classifier(model(), data(), epochs=1, checkpoint_dir=tmp_path, **KW)


@pytest.mark.parametrize(("text", "names"), [
    ("{not json", ["checkpoint.json", "malformed JSON"]),
    ('{"serial": 1, "state": {}}', ["checkpoint.json", "'tensors'"]),
    ('{"serial": 1, "tensors": "../../etc/passwd", "state": {}}', ["checkpoint.json", "'tensors'"]),
    ("[" * 100000, ["checkpoint.json", "nested too deeply"]),
])
def test_corrupt_checkpoint_index_is_named(tmp_path, text, names):
    _trained(tmp_path)
    (tmp_path / "checkpoint.json").write_text(text)
    with rejected(*names):
        load_checkpoint(tmp_path)


def test_corrupt_checkpoint_tensor_file_is_named(tmp_path):
    _, tensor_file = _trained(tmp_path)
    tensor_file.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with rejected(tensor_file.name, "safetensors"):
        load_checkpoint(tmp_path)
