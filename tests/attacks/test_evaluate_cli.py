"""`robustfast evaluate`: the table and the JSON report of a saved model on digits; named rejections."""
import json

import torch
from typer.testing import CliRunner

from robustfast.cli import app
from robustfast.models import SmallCNN, save_model


def saved(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_model(SmallCNN(width=4), path)
    return str(path)


def test_evaluate_prints_the_table_and_writes_the_report(tmp_path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["evaluate", "--model", saved(tmp_path), "--data", "digits", "--n", "12",
                                      "--attacks", "clean,pgd20,cw", "--eps", "0.1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in ("clean", "pgd20", "cw", "local Lipschitz"))
    report = json.loads(out.read_text())
    assert report["n"] == 12 and set(report["accuracy"]) == {"clean", "pgd20", "cw"}
    assert len(report["robust"]["cw"]) == 12


def test_evaluate_rejects_an_unknown_attack_and_data(tmp_path):
    path = saved(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--model", path, "--attacks", "clean,fgsm", "--n", "4"])
    assert isinstance(result.exception, ValueError) and "attacks" in str(result.exception)
    result = CliRunner().invoke(app, ["evaluate", "--model", path, "--data", "mnist"])
    assert isinstance(result.exception, ValueError) and "--data" in str(result.exception)
