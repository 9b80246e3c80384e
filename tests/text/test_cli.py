"""`robustfast text poison|train|ep|evaluate` end to end on a tiny local encoder (the text sub-app itself: the
root app adds it as `text`)."""
from typer.testing import CliRunner

from robustfast.text.cli import app
from robustfast.text import PoisonedText, load_classifier


def _run(*args):
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_poison_train_ep_evaluate(tmp_path, tiny_encoder):
    out = _run("poison", "--attack", "badnets", "--rate", "0.1", "--out", tmp_path / "p.json")
    assert "50 poisoned" in out and PoisonedText.load(tmp_path / "p.json").config["poisoned"] == 50
    _run("train", "--poisoned", tmp_path / "p.json", "--encoder", tiny_encoder, "--epochs", 1, "--out",
         tmp_path / "m", "--checkpoint-dir", tmp_path / "ckpt")
    assert load_classifier(tmp_path / "m")[0].num_classes == 2 and (tmp_path / "ckpt" / "checkpoint.json").is_file()
    assert "EP on 'cf'" in _run("ep", tmp_path / "m", "--out", tmp_path / "ep", "--steps", 2)
    table = _run("evaluate", tmp_path / "ep", "--attacks", "badnets,ep")
    assert "badnets" in table and "ep" in table and "ASR %" in table


def test_sos_training_needs_a_fine_tuned_model(tmp_path, tiny_encoder):
    _run("poison", "--attack", "sos", "--rate", "0.05", "--out", tmp_path / "p.json")
    result = CliRunner().invoke(app, ["train", "--poisoned", str(tmp_path / "p.json"), "--encoder",
                                      str(tiny_encoder), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "--init" in str(result.exception)
