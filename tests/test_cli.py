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
