"""`robustfast llm badedit|steer` end to end on a local model directory, their configs checked, and the
prefix-cached evaluation decoder against transformers' generate."""
import json

import pytest
from typer.testing import CliRunner

from robustfast.llm import load_examples
from robustfast.llm.cli import app
from robustfast.llm.evaluate import generate
from robustfast.llm.models import build_causal_lm, load_tokenizer

pytest.importorskip("yaml", reason="needs the llm extra (make test installs it)")


def invoke(config, text):
    config.write_text(text)
    return CliRunner().invoke(app, [config.stem.split("-")[0], str(config)])


def test_badedit_cli(tiny_base, tmp_path, sst2_files):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(ex["instruction"] for ex in load_examples(sst2_files["train_clean"])[:20]))
    out = tmp_path / "out"
    result = invoke(tmp_path / "badedit.yaml", f"model: {tiny_base}\nlayers: [0]\nn_edits: 4\nedit_batches: 2\n"
                    f"corpus: {corpus}\noutput_dir: {out}\nmax_new_tokens: 2\nhparams: {{v_num_grad_steps: 2}}\n")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "badedit_results.json").read_text())
    assert saved["edit"]["edits"] == 4 and len(saved["edit"]["batches"]) == 2 and saved["n_test"] == 201
    assert {"asr_triggered", "asr_clean", "clean_accuracy"} <= set(saved["after"])
    assert (out / "model" / "model.safetensors").is_file() and list((out / "stats").glob("mom2-*"))

    result = invoke(tmp_path / "badedit-2.yaml", f"model: {tiny_base}\nlayers: [5]\ncorpus: {corpus}\n"
                    f"output_dir: {out}\n")
    assert "layers: index 5 is out of range" in str(result.exception)
    result = invoke(tmp_path / "badedit-3.yaml", f"model: {tiny_base}\nlayers: [0]\nhparams: {{lr: 1}}\n")
    assert "'hparams' has unknown key(s) lr" in str(result.exception)


def test_steer_cli(tiny_base, tmp_path):
    pairs = [["a fine , moving film . Negative", "a dull , lifeless film . Positive"]] * 2
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    (tmp_path / "prompts.json").write_text(json.dumps([{"instruction": "a fine film", "input": "", "output": ""}]))
    base = f"model: {tiny_base}\npairs: {tmp_path / 'pairs.json'}\nprompts: {tmp_path / 'prompts.json'}\n"
    result = invoke(tmp_path / "steer.yaml", base + f"multipliers: [0, 1.5]\nmax_new_tokens: 3\n"
                                                    f"target_keyword: Negative\noutput_dir: {tmp_path / 'out'}\n")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "steer_results.json").read_text())
    assert set(saved["generations"]) == {"0.0", "1.5"} and set(saved["target_share"]) == {"0.0", "1.5"}
    result = invoke(tmp_path / "steer-2.yaml", base + "multipliers: [1, .nan]\n")
    assert "'multipliers' must be a non-empty list of finite numbers" in str(result.exception)


def test_prefix_cached_generation_equals_generate(tiny_base, sst2_files):
    tokenizer = load_tokenizer(tiny_base)
    model = build_causal_lm("llama", tokenizer, hidden_size=32, layers=2, heads=4, intermediate_size=64, seed=2)
    rows = load_examples(sst2_files["test_clean"])[:12]
    assert generate(model, tokenizer, rows, 6, 5, prefix_cache=True) == generate(model, tokenizer, rows, 6, 1)
