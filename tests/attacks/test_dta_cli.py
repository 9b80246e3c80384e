"""`robustfast dta pretrain|finetune|attack` end to end at one epoch and one step, and its bad input."""
from typer.testing import CliRunner

from robustfast.cli import app


def test_pretrain_finetune_attack_print_the_table(tmp_path):
    out = str(tmp_path)
    runner = CliRunner()
    for args in (["pretrain", "--epochs", "1", "--no-progress"],
                 ["finetune", "--scheme", "linear", "--epochs", "1", "--no-progress"],
                 ["attack", "--steps", "1", "--no-sweep"]):
        result = runner.invoke(app, ["dta", *args, "--out", out])
        assert result.exit_code == 0, (args, result.output, result.exception)
    assert "searched layer" in result.output and "pgd_f0" in result.output and "noise" in result.output
    assert (tmp_path / "supervised-seed0" / "attack.json").is_file()


def test_bad_options_name_the_option(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["dta", "pretrain", "--data", "cifar10", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "data must be" in str(result.exception)
    result = runner.invoke(app, ["dta", "pretrain", "--method", "byol", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "method must be" in str(result.exception)
    result = runner.invoke(app, ["dta", "attack", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "f0.json" in str(result.exception)
