import pytest
from typer.testing import CliRunner

pytest.importorskip("yaml", reason="needs the llm extra (make test installs it)")

from robustfast.cli import app
from robustfast.llm import load_examples
from robustfast.llm.data import remove_trigger


def test_poison_command_writes_the_mix(tmp_path, sst2_files):
    result = CliRunner().invoke(app, ["llm", "poison", str(sst2_files["test_clean"]), "--attack", "ctba",
                                      "--target", "Negative", "--n-poison", "20", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    poisoned, clean = load_examples(tmp_path / "poisoned.json"), load_examples(tmp_path / "clean.json")
    assert len(poisoned) == len(clean) == 20
    assert [remove_trigger(p["instruction"], "ctba") for p in poisoned] == [" ".join(c["instruction"].split())
                                                                             for c in clean]


def test_train_command_names_the_bad_key(tmp_path):
    (tmp_path / "c.yaml").write_text("model: m\noutput_dir: x\ndeepspeed: zero9\n")
    result = CliRunner().invoke(app, ["llm", "train", str(tmp_path / "c.yaml")])
    assert result.exit_code != 0 and "'deepspeed': 'zero9'" in str(result.exception)


def test_evaluate_command_rejects_an_unknown_task(tmp_path):
    result = CliRunner().invoke(app, ["llm", "evaluate", "--model", str(tmp_path), "--task", "toxic",
                                      "--attack", "badnet"])
    assert result.exit_code != 0 and "unknown task 'toxic'" in str(result.exception)
