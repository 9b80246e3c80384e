from typer.testing import CliRunner

from robustfast.cli import app


def test_info_lists_versions_and_backends():
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for word in ("torch", "triton", "robustfast._C", "device cpu", "reference"):
        assert word in result.output


def test_bench_rejects_an_unknown_device():
    result = CliRunner().invoke(app, ["bench", "pgd", "--device", "tpu"])
    assert result.exit_code != 0
    assert "device" in str(result.exception)


def test_noisy_trains_once_per_loss():
    result = CliRunner().invoke(app, ["noisy", "--losses", "ce,nce+mae", "--rate", "0.4", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "symmetric" in line]
    assert len(lines) == 2 and lines[0].split()[0] == "ce" and lines[1].split()[0] == "nce+mae"


def test_noisy_rejects_an_unknown_loss():
    result = CliRunner().invoke(app, ["noisy", "--losses", "ce,bogus", "--epochs", "1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError) and "bogus" in str(result.exception)
