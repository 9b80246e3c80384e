"""The `robustfast` command turns a user error into one line on stderr and exit status 2, in one place (the root
app in robustfast/cli.py); a genuine bug keeps its traceback.

The app is run as the console script runs it (`app(args)`, in process, and once through the installed script);
`typer.testing.CliRunner` invokes the click command beneath and so still sees the exception itself."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustfast.cli import app


@pytest.fixture(autouse=True)
def _keep_excepthook(monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # typer installs its own when the app runs
    monkeypatch.delenv("ROBUSTFAST_TRACEBACK", raising=False)


def run(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        app(args, prog_name="robustfast")
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def nan_config(tmp_path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("model: m\noutput_dir: x\nlearning_rate: .nan\n")
    return path


def steer_config(tmp_path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("model: m\npairs: p.json\nprompts: q.json\nmultipliers: [1, .nan]\n")
    return path


@pytest.mark.parametrize("case", ["lid-k", "poison-trigger", "llm-train-nan", "llm-train-missing", "ldreg-beta",
                                  "llm-steer-nan", "llm-badedit-missing"])
def test_a_user_error_is_one_line_and_exit_2(case, capsys, tmp_path):
    args, named = {
        "lid-k": (["lid", "--data", "gaussian", "--k", "0"], "k must be"),
        "poison-trigger": (["poison", "--triggers", "badnets,laser", "--epochs", "1"], "laser"),
        "llm-train-nan": (["llm", "train", str(nan_config(tmp_path))], "learning_rate"),
        "llm-train-missing": (["llm", "train", str(tmp_path / "none.yaml")], "none.yaml"),
        "ldreg-beta": (["ldreg", "--beta", "nan", "--epochs", "1"], "beta"),
        "llm-steer-nan": (["llm", "steer", str(steer_config(tmp_path))], "multipliers"),
        "llm-badedit-missing": (["llm", "badedit", str(tmp_path / "none.yaml")], "none.yaml"),
    }[case]
    if case.startswith("llm"):
        pytest.importorskip("yaml", reason="needs the llm extra (make test installs it)")
    code, _, err = run(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert "Traceback" not in err


def test_click_usage_errors_keep_their_own_message_and_code(capsys):
    code, _, err = run(["lid", "--k", "many"], capsys)
    assert code == 2 and "Invalid value" in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    import robustfast.info

    def broken():
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(robustfast.info, "report", broken)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        app(["info"], prog_name="robustfast")


def test_robustfast_traceback_shows_the_user_error_in_full(monkeypatch):
    monkeypatch.setenv("ROBUSTFAST_TRACEBACK", "1")
    with pytest.raises(ValueError, match="k must be"):
        app(["lid", "--data", "gaussian", "--k", "0"], prog_name="robustfast")


def test_the_installed_command_prints_one_line(tmp_path):
    script = Path(sys.executable).with_name("robustfast")
    if not script.is_file():
        pytest.skip("the robustfast console script is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k != "ROBUSTFAST_TRACEBACK"}
    done = subprocess.run([str(script), "lid", "--data", "gaussian", "--k", "1"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith("error: k must be")
