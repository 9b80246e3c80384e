"""`robustfast lid`, `robustfast ldreg` and the demo's LID section."""
import torch
from typer.testing import CliRunner

from robustfast.cli import app
from robustfast.lid.demo import section


def test_lid_command_prints_the_log_scale_summary(tmp_path):
    out = tmp_path / "lids.npy"
    result = CliRunner().invoke(app, ["lid", "--data", "gaussian", "--k", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "geometric mean" in result.output and out.is_file()


def test_lid_command_rejects_unknown_data():
    result = CliRunner().invoke(app, ["lid", "--data", "nowhere.csv"])
    assert result.exit_code != 0
    assert "data must be" in str(result.exception)


def test_demo_section_writes_a_histogram_and_digits_are_lower_dimensional(tmp_path):
    summary = section("cpu", tmp_path)
    png = tmp_path / "lid_histogram.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # handwritten digits lie near a low-dimensional set; Gaussian noise in 64-D does not
    assert summary["digits (64-D pixels)"]["gmean"] < 0.5 * summary["Gaussian (64-D)"]["gmean"]


def test_ldreg_command_trains_both_runs_and_prints_a_table():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: see tests/lid/test_ssl.py
    try:
        result = CliRunner().invoke(app, ["ldreg", "--epochs", "1", "--width", "4"])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert "probe_acc" in result.output and "gmean_lid" in result.output
