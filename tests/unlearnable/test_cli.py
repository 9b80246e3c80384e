"""`robustfast unlearnable` writes a loadable unlearnable set; `robustfast bench unlearnable --quick` runs."""
import json

import torch
from typer.testing import CliRunner

from robustfast.cli import app
from robustfast.data import digits
from robustfast.unlearnable import load_unlearnable


def test_cli_writes_the_unlearnable_set_and_resumes(tmp_path):
    args = ["unlearnable", "--kind", "classwise", "--max-rounds", "2", "--no-evaluate", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "classwise noise: 2 rounds" in result.output
    data, noise, meta = load_unlearnable(tmp_path)
    images, labels = data.tensors
    clean_images, clean_labels = digits("train", size=32, channels=3).tensors
    assert torch.equal(labels, clean_labels) and images.shape == clean_images.shape
    assert noise.shape == (10, 3, 32, 32) and noise.abs().max() <= 8 / 255 and noise.abs().max() > 0
    assert images.min() >= 0 and images.max() <= 1
    assert ((images - clean_images).abs() <= 8 / 255 + 1 / 255).all()
    assert meta["kind"] == "classwise" and meta["images_dtype"] == "uint8" and meta["report"]["rounds"] == 2
    assert json.loads((tmp_path / "unlearnable.json").read_text())["quantization"] == "signed"
    # A second call finds the finished rounds in the checkpoint and runs none again.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "classwise noise: 2 rounds" in again.output
    assert torch.equal(load_unlearnable(tmp_path)[1], noise)


def test_bench_quick_runs_both_loops(tmp_path):
    result = CliRunner().invoke(app, ["bench", "unlearnable", "--quick", "--n", "64", "--batch-size", "32",
                                      "--device", "cpu", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "robustfast" in result.output and "reference loop" in result.output
    assert not list(tmp_path.iterdir()), "--quick runs are not saved"
