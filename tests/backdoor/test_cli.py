"""`robustfast poison` and `robustfast bench triggers` end to end, at toy sizes."""
import json

import torch
from typer.testing import CliRunner

from robustfast.backdoor.demo import run
from robustfast.cli import app


def test_demo_runner_prints_tables_and_returns_the_report(capsys):
    torch.manual_seed(0)
    report = run(triggers=("badnets", "sig"), rate=0.1, label_mode="all2one", epochs=2, size=8, width=8)
    out = capsys.readouterr().out
    assert "attack success rate" in out and "cross-activation" in out and "badnets" in out
    assert len(report.asr) == 2 and report.cross.shape == (3, 10)
    assert torch.allclose(report.cross.sum(1), torch.ones(3, dtype=torch.float64))


def test_hybrid_demo_reports_the_composite_and_its_parts(capsys):
    report = run(triggers=("badnets", "sig"), rate=0.1, multi="hybrid", label_mode="all2one", epochs=1, size=8,
                 width=8)
    assert report.names == ["hybrid", "badnets", "sig"] and report.targets == [0, 0, 0]


def test_sequential_demo_reports_each_stage(capsys):
    report = run(triggers=("badnets", "sig"), rate=0.1, multi="sequential", label_mode="all2random", overlap=0.5,
                 epochs=1, size=8, width=8)
    out = capsys.readouterr().out
    assert "after each earlier stage" in out and "ASR 0 badnets" in out
    assert report.names == ["badnets", "sig"]


def test_poison_command_rejects_an_unknown_trigger():
    result = CliRunner().invoke(app, ["poison", "--triggers", "badnets,laser", "--epochs", "1"])
    assert result.exit_code != 0
    assert "unknown trigger name 'laser'" in str(result.exception)


def test_bench_triggers_runs_and_records(tmp_path):
    result = CliRunner().invoke(app, ["bench", "triggers", "--batch-size", "12", "--size", "8", "--repeats", "1",
                                      "--device", "cpu", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "image by image" in result.output and "fused (reference)" in result.output
    (path,) = tmp_path.glob("*-triggers.json")
    rows = json.loads(path.read_text())[0]["rows"]
    assert all(r["images/s"] > 0 for r in rows)


def test_expose_command_runs_the_pipeline_quick(tmp_path):
    result = CliRunner().invoke(app, ["expose", "--quick", "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for part in ("cul trajectory", "detected backdoor label", "model detection", "Neural Cleanse",
                 "Cognitive Distillation", "MMBD", "RNP"):
        assert part in result.output
    assert (tmp_path / "expose-badnets-cul.png").is_file()
