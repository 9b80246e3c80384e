"""The utility layer: seeded streams, atomic writes, learning-rate schedules, the optional matplotlib."""
import json
import math
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robustfast._util.atomic import write_json, write_safetensors
from robustfast._util.plot import pyplot
from robustfast._util.schedules import epoch_lr_factor, step_lr_factor
from robustfast._util.seeds import stream_generator, stream_seed


def test_stream_seed_is_the_seed_sequence_draw_and_streams_differ():
    assert stream_seed(7, 3) == int(np.random.SeedSequence([7, 3]).generate_state(1)[0])
    assert len({stream_seed(0, tag) for tag in range(4)}) == 4
    a, b = stream_generator(5, 1, 2), stream_generator(5, 1, 2)
    assert torch.equal(torch.randperm(50, generator=a), torch.randperm(50, generator=b))


def test_atomic_writes_leave_no_temporary_file(tmp_path):
    tensors = {"w": torch.arange(6.0).view(2, 3).t()}  # not contiguous
    write_safetensors(tmp_path / "t.safetensors", tensors)
    write_json(tmp_path / "t.json", {"a": [1, 2]}, newline=True)
    assert torch.equal(load_file(str(tmp_path / "t.safetensors"))["w"], tensors["w"])
    assert (tmp_path / "t.json").read_text().endswith("\n") and json.loads((tmp_path / "t.json").read_text())["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.safetensors"]


def test_the_two_schedules_count_time_differently():
    assert epoch_lr_factor("cosine", 5, 10) == pytest.approx(0.5) and epoch_lr_factor("step", 99, 100) == 0.1 ** 2
    assert step_lr_factor(5, 100, 10, "cosine") == 0.5  # warm-up
    assert step_lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_plotting_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"robustfast\[plot\]"):
        pyplot()
