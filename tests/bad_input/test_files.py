"""Corrupt files: every loader rejects them with a ValueError naming the file (and the key), and never returns
non-finite weights or silently cast data. Also: the unlearnable save survives a kill between its writes."""
from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from robustfast._util import atomic
from robustfast.backdoor import PoisonedDataset, poison
from robustfast.data import cifar10
from robustfast.llm import checkpoint as llm_checkpoint
from robustfast.llm.config import deepspeed_config, load_config
from robustfast.llm.data import load_examples
from robustfast.models import Normalized, SmallCNN, load_model, save_model
from robustfast.unlearnable import io as unlearnable_io
from robustfast.unlearnable import load_unlearnable, save_unlearnable
from tests.bad_input.helpers import images, rejected

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DEEP = "[" * 100000


# --- load_model ----------------------------------------------------------------------------------------------------

def saved_model(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(SmallCNN(num_classes=3, in_channels=1, width=4), path)
    return path


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_load_model_rejects_nonfinite_weights(tmp_path, value):
    path = saved_model(tmp_path)
    tensors = load_file(str(path))
    tensors["fc.bias"][1] = value
    save_file(tensors, str(path))
    with rejected("m.safetensors", "'fc.bias'", "NaN or inf"):
        load_model(path)


@pytest.mark.parametrize(("sidecar", "names"), [
    ("{oops", ["m.json", "malformed JSON"]),
    (DEEP, ["m.json", "nested too deeply"]),
    ("[]", ["m.json", "'class'"]),
    ('{"config": {}}', ["m.json", "missing key 'class'"]),
    ('{"class": "SmallCNN"}', ["m.json", "missing key 'config'"]),
    ('{"class": 3, "config": {}}', ["m.json", "'class'"]),
    ('{"class": "Evil", "config": {}}', ["m.json", "unknown model class"]),
    ('{"class": "SmallCNN", "config": {"depth": 3}}', ["m.json", "'config'"]),
    ('{"class": "SmallCNN", "config": {"num_classes": 5, "in_channels": 1, "width": 4}}',
     ["m.safetensors", "do not fit"]),
    ('{"class": "Normalized", "mean": [0.5], "std": [0.5]}', ["m.json", "'model'"]),
    ('{"class": "Normalized", "model": {"class": "Normalized"}, "mean": [0.5], "std": [0.5]}',
     ["m.json", "Normalized"]),
])
def test_load_model_names_the_file_and_key(tmp_path, sidecar, names):
    path = saved_model(tmp_path)
    path.with_suffix(".json").write_text(sidecar)
    with rejected(*names):
        load_model(path)


def test_load_model_rejects_a_corrupt_tensor_file(tmp_path):
    path = saved_model(tmp_path)
    path.write_bytes(b"\xff" * 64)
    with rejected("m.safetensors", "safetensors"):
        load_model(path)


def test_load_model_still_round_trips(tmp_path):
    torch.manual_seed(0)
    model = Normalized(SmallCNN(num_classes=3, in_channels=1, width=4), [0.5], [0.25])
    save_model(model, tmp_path / "n.safetensors")
    back = load_model(tmp_path / "n.safetensors")
    x = images(2, 1)
    assert torch.equal(model.eval()(x), back(x))


# --- cifar10 -------------------------------------------------------------------------------------------------------

def write_cifar(folder, data=None, labels=None, extra=None, n=3):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ["test_batch"]:
        d = {b"data": rng.integers(1, 256, size=(n, 3072), dtype=np.uint8) if data is None else data,
             b"labels": rng.integers(0, 10, size=n).tolist() if labels is None else labels}
        d.update(extra or {})
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
    return folder


class _Huge:
    """A numpy array header asking for 9 TiB before any data is read."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return _reconstruct, (np.ndarray, (9 * 2 ** 40,), b"b")


@pytest.mark.parametrize(("data", "labels", "names"), [
    (np.full((3, 3072), 0.5, np.float32), None, ["test_batch", "'data'", "uint8"]),
    (np.full((3, 3072), 7, np.int64), None, ["test_batch", "'data'", "uint8"]),
    (np.full((3, 100), 7, np.uint8), None, ["test_batch", "'data'", "3072"]),
    (None, [0, -1, 2], ["test_batch", "'labels'", "[0, 10)"]),
    (None, [0, 200, 2], ["test_batch", "'labels'", "[0, 10)"]),
    (None, [0.0, 1.5, 2.0], ["test_batch", "'labels'"]),
    (None, [0, 1], ["test_batch", "'labels'"]),
    (_Huge(), None, ["test_batch", "array header"]),
])
def test_cifar10_refuses_what_it_used_to_cast(tmp_path, data, labels, names):
    write_cifar(tmp_path, data, labels)
    with rejected(*names):
        cifar10(tmp_path, "test")


@pytest.mark.parametrize(("content", "names"), [
    (b"", ["test_batch", "not a CIFAR-10 python batch"]),
    (b"garbage that is no pickle", ["test_batch"]),
    (pickle.dumps([1, 2, 3], protocol=2), ["test_batch", "dict"]),
    (pickle.dumps({b"labels": [1]}, protocol=2), ["test_batch", "missing key 'data'"]),
    (pickle.dumps({b"data": np.ones((1, 3072), np.uint8)}, protocol=2), ["test_batch", "missing key 'labels'"]),
])
def test_cifar10_corrupt_batches_are_named(tmp_path, content, names):
    (tmp_path / "test_batch").write_bytes(content)
    with rejected(*names):
        cifar10(tmp_path, "test")


@FAST
@given(label=st.integers(-300, 300))
def test_cifar10_labels_load_in_range_or_are_named(tmp_path_factory, label):
    folder = write_cifar(tmp_path_factory.mktemp("c"), labels=[1, label, 2])
    try:
        x, y = cifar10(folder, "test").tensors
    except ValueError as err:
        assert "'labels'" in str(err) and "test_batch" in str(err) and not 0 <= label < 10
        return
    assert y.tolist() == [1, label, 2] and x.dtype == torch.float32


# --- LLM YAML configs and DeepSpeed JSON -----------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "key"), [
    ("learning_rate: .nan", "learning_rate"),
    ("learning_rate: .inf", "learning_rate"),
    ("epochs: .inf", "epochs"),
    ("epochs: -.inf", "epochs"),
    ("weight_decay: .nan", "weight_decay"),
    ("max_grad_norm: .inf", "max_grad_norm"),
    ("max_steps: true", "max_steps"),
    ("max_steps: 2.0", "max_steps"),
    ("seed: true", "seed"),
    ("seed: -1", "seed"),
    ("lora_r: true", "lora_r"),
])
def test_yaml_config_rejects_nonfinite_and_bool_values(tmp_path, line, key):
    pytest.importorskip("yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(f"model: m\noutput_dir: out\n{line}\n")
    with rejected("bad.yaml", f"'{key}'"):
        load_config(path)


@pytest.mark.parametrize(("text", "names"), [
    ('{"zero_optimization": {"stage": 2.0}}', ["ds.json", "'zero_optimization.stage'"]),
    ('{"zero_optimization": {"stage": true}}', ["ds.json", "'zero_optimization.stage'"]),
    ('{"zero_optimization": {"stage": "2"}}', ["ds.json", "'zero_optimization.stage'"]),
    ('{"zero_optimization": {"stage": 4}}', ["ds.json", "'zero_optimization.stage'"]),
    ('{"zero_optimization": 3}', ["ds.json", "'zero_optimization'"]),
    ("[1, 2]", ["ds.json", "JSON object"]),
    ("{", ["ds.json", "malformed JSON"]),
    (DEEP, ["ds.json", "nested too deeply"]),
])
def test_deepspeed_config_rejects_bad_stages(tmp_path, text, names):
    path = tmp_path / "ds.json"
    path.write_text(text)
    with rejected(*names):
        deepspeed_config(str(path))


def test_deepspeed_integer_stage_still_loads(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text('{"zero_optimization": {"stage": 2}}')
    assert deepspeed_config(str(path))["zero_optimization"]["stage"] == 2


# --- PoisonedDataset.load ------------------------------------------------------------------------------------------

def saved_poison(tmp_path):
    x = images(8)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    ds = poison(x, y, ["badnets", "blend"], rate=0.25, num_classes=4, seed=3)
    path = tmp_path / "p.safetensors"
    ds.save(path)
    return ds, path


def _edit_tensor(path, key, fn):
    t = load_file(str(path))
    t[key] = fn(t[key]).contiguous()
    save_file(t, str(path))


@pytest.mark.parametrize(("key", "fn", "names"), [
    ("trigger_ids", lambda v: torch.full_like(v, 2), ["p.safetensors", "'trigger_ids'", "[-1, 2)"]),
    ("trigger_ids", lambda v: torch.full_like(v, -7), ["p.safetensors", "'trigger_ids'"]),
    ("trigger_ids", lambda v: v[:3], ["p.safetensors", "'trigger_ids'"]),
    ("labels", lambda v: v.float(), ["p.safetensors", "'labels'"]),
    ("applied", lambda v: v[:, :1], ["p.safetensors", "'applied'"]),
    ("slice.0", lambda v: v + 100, ["p.safetensors", "'slice.0'"]),
    ("images", lambda v: v.index_fill(0, torch.tensor([0]), math.nan), ["p.safetensors", "'images'", "NaN"]),
])
def test_poisoned_dataset_load_checks_the_tensors(tmp_path, key, fn, names):
    _, path = saved_poison(tmp_path)
    _edit_tensor(path, key, fn)
    with rejected(*names):
        PoisonedDataset.load(path)


@pytest.mark.parametrize(("edit", "names"), [
    (lambda s: s.pop("triggers"), ["p.json", "missing key 'triggers'"]),
    (lambda s: s.pop("slices"), ["p.json", "missing key 'slices'"]),
    (lambda s: s.update(slices=5), ["p.safetensors", "'slice.2'"]),
    (lambda s: s.update(targets=[0]), ["p.json", "'targets'"]),
    (lambda s: s["triggers"].append({"name": "nonsense"}), ["p.json", "'triggers', entry 2"]),
    (lambda s: s["triggers"][0].update(size=0), ["p.json", "'triggers', entry 0", "size"]),
])
def test_poisoned_dataset_load_checks_the_sidecar(tmp_path, edit, names):
    _, path = saved_poison(tmp_path)
    side = json.loads(path.with_suffix(".json").read_text())
    edit(side)
    path.with_suffix(".json").write_text(json.dumps(side))
    with rejected(*names):
        PoisonedDataset.load(path)


def test_poisoned_dataset_load_names_malformed_files(tmp_path):
    _, path = saved_poison(tmp_path)
    path.with_suffix(".json").write_text(DEEP)
    with rejected("p.json", "nested too deeply"):
        PoisonedDataset.load(path)
    path.write_bytes(b"\x00" * 10)
    with rejected("p.safetensors", "safetensors"):
        PoisonedDataset.load(path)


def test_poisoned_dataset_round_trip_still_works(tmp_path):
    ds, path = saved_poison(tmp_path)
    back = PoisonedDataset.load(path)
    assert torch.equal(back.trigger_ids, ds.trigger_ids) and torch.equal(back.images, ds.images)


# --- unlearnable sets ----------------------------------------------------------------------------------------------

def _unlearnable(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 3, 8, 8, generator=g)
    return x, torch.tensor([0, 1, 0, 1]), (torch.rand(2, 3, 8, 8, generator=g) - 0.5) * (16 / 255)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def test_unlearnable_save_survives_a_kill_between_its_writes(tmp_path, monkeypatch):
    x, y, old_noise = _unlearnable(0)
    save_unlearnable(tmp_path, x, y, old_noise, {"run": "old"}, quantized=False)
    x2, y2, new_noise = _unlearnable(1)
    real_replace, calls = os.replace, []

    def killed_at_the_commit(src, dst):
        calls.append(dst)
        if str(dst).endswith(unlearnable_io.SIDECAR):
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", killed_at_the_commit)
    with pytest.raises(Killed):
        save_unlearnable(tmp_path, x2, y2, new_noise, {"run": "new"}, quantized=False)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert len(calls) == 2  # the new tensor file was written, the sidecar's commit was killed
    data, noise, meta = load_unlearnable(tmp_path)  # the old pair, whole
    assert meta["run"] == "old" and torch.equal(noise, old_noise) and torch.equal(data.tensors[0], x)
    # the next save commits the new pair and removes what the kill left
    save_unlearnable(tmp_path, x2, y2, new_noise, {"run": "new"}, quantized=False)
    data, noise, meta = load_unlearnable(tmp_path)
    assert meta["run"] == "new" and torch.equal(noise, new_noise)
    assert sorted(p.name for p in tmp_path.iterdir()) == [meta["tensors"], unlearnable_io.SIDECAR]


def test_unlearnable_legacy_layout_still_loads(tmp_path):
    x, y, noise = _unlearnable(0)
    save_file({"images": x, "labels": y, "noise": noise}, str(tmp_path / unlearnable_io.TENSORS))
    (tmp_path / unlearnable_io.SIDECAR).write_text(json.dumps({"kind": "classwise", "images_dtype": "float32"}))
    data, back, meta = load_unlearnable(tmp_path)
    assert torch.equal(back, noise) and torch.equal(data.tensors[0], x) and meta["kind"] == "classwise"


@pytest.mark.parametrize(("key", "fn", "names"), [
    ("noise", lambda v: v.index_fill(0, torch.tensor([1]), math.nan), ["'noise'", "NaN"]),
    ("images", lambda v: v + 2, ["'images'", "[0, 1]"]),
    ("labels", lambda v: v[:2], ["'labels'"]),
    ("noise", lambda v: v[:, :1], ["'noise'"]),
])
def test_unlearnable_load_checks_the_tensors(tmp_path, key, fn, names):
    x, y, noise = _unlearnable(0)
    path = save_unlearnable(tmp_path, x, y, noise, {}, quantized=False)
    _edit_tensor(path, key, fn)
    with rejected(path.name, *names):
        load_unlearnable(tmp_path)


@pytest.mark.parametrize(("sidecar", "names"), [
    ("{", ["unlearnable.json", "malformed JSON"]),
    (DEEP, ["unlearnable.json", "nested too deeply"]),
    ('{"tensors": 5}', ["unlearnable.json", "'tensors'"]),
    ('{"tensors": "../x.safetensors"}', ["unlearnable.json", "'tensors'"]),
])
def test_unlearnable_load_names_a_corrupt_sidecar(tmp_path, sidecar, names):
    x, y, noise = _unlearnable(0)
    save_unlearnable(tmp_path, x, y, noise, {}, quantized=False)
    (tmp_path / "unlearnable.json").write_text(sidecar)
    with rejected(*names):
        load_unlearnable(tmp_path)


def test_unlearnable_load_names_a_missing_key(tmp_path):
    x, y, noise = _unlearnable(0)
    path = save_unlearnable(tmp_path, x, y, noise, {}, quantized=False)
    save_file({"images": x, "labels": y}, str(path))
    with rejected(path.name, "missing key 'noise'"):
        load_unlearnable(tmp_path)


# --- LLM data and checkpoints --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "names"), [
    ('[{"instruction": "a", "input": "", "output": true}]', ["rows.json", "entry 0", "'output'"]),
    ('[{"instruction": "a", "input": ""}]', ["rows.json", "entry 0", "'output'"]),
    ('{"instruction": "a"}', ["rows.json", "list"]),
    ("[{", ["rows.json", "malformed JSON"]),
    (DEEP, ["rows.json", "nested too deeply"]),
])
def test_llm_examples_name_the_file_and_entry(tmp_path, content, names):
    path = tmp_path / "rows.json"
    path.write_text(content)
    with rejected(*names):
        load_examples(path)


def test_llm_examples_undecodable_file_is_named(tmp_path):
    path = tmp_path / "rows.json"
    path.write_bytes(b"\xff\xfe[\x00")
    with rejected("rows.json"):
        load_examples(path)


def _llm_checkpoint(root, weight=None):
    weights = {"lora.A": torch.arange(1.0, 7.0).view(2, 3) if weight is None else weight}
    llm_checkpoint.save_rank(root, 4, 0, weights, ({}, {"state": {}, "groups": []}), {"step": 4})
    llm_checkpoint.commit(root, 4, 1)


@pytest.mark.parametrize(("latest", "names"), [
    ("{", ["latest.json", "malformed JSON"]),
    ('{"world_size": 1}', ["latest.json", "missing key 'step'"]),
    ('{"step": "4", "world_size": 1}', ["latest.json", "'step'"]),
    ('{"step": 4, "world_size": 0}', ["latest.json", "world_size"]),
])
def test_llm_checkpoint_commit_record_is_checked(tmp_path, latest, names):
    _llm_checkpoint(tmp_path)
    (tmp_path / "latest.json").write_text(latest)
    with rejected(*names):
        llm_checkpoint.load_rank(tmp_path, 0, 1)


def test_llm_checkpoint_rejects_nonfinite_weights(tmp_path):
    _llm_checkpoint(tmp_path, torch.tensor([[1.0, math.nan], [2.0, 3.0]]))
    with rejected("rank-0", "'lora.A'", "NaN or inf"):
        llm_checkpoint.load_rank(tmp_path, 0, 1)
