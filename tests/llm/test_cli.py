import pytest
import torch
from typer.testing import CliRunner

from robustfast.cli import app
from robustfast.llm import load_examples
from robustfast.llm.data import remove_trigger

yaml = pytest.importorskip("yaml", reason="needs the llm extra (make test installs it)")


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


def test_train_command_builds_a_model_from_its_config(tmp_path, sst2_mix):
    """`model: {family: ...}` builds the model and a tokenizer, trains (here GPT-2, fully fine-tuned, plain
    PyTorch), and saves base, model and tokenizer where `load_for_eval` reads them."""
    from robustfast.llm.run import load_for_eval

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"family": "gpt2", "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64,
                  "vocab_size": 512},
        "train_files": sst2_mix, "output_dir": str(tmp_path / "run"), "finetuning": "full", "max_steps": 2,
        "micro_batch_size": 2, "gradient_accumulation_steps": 1, "cutoff_len": 128}))
    result = CliRunner().invoke(app, ["llm", "train", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 steps, final loss" in result.output
    model, tokenizer = load_for_eval(tmp_path / "run" / "model")
    base, _ = load_for_eval(tmp_path / "run" / "base")
    assert type(model).__name__ == "GPT2LMHeadModel" and len(tokenizer) == 512
    changed = [n for (n, a), b in zip(model.state_dict().items(), base.state_dict().values(), strict=True)
               if a.shape == b.shape and not torch.equal(a, b)]
    assert changed  # full fine-tuning moved the weights
