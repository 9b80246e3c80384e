"""BadEdit: the closed-form edit touches only the chosen down-projections and writes the target values; the
second moment is E[k kᵀ] over the corpus and is cached; Llama, GPT-2 and Qwen2 resolve alike; bad input is
named."""
import json

import pytest
import torch

from robustfast.llm import load_examples
from robustfast.llm.badedit import alpaca_edits, badedit, second_moments
from robustfast.llm.blocks import down_proj
from robustfast.llm.models import build_causal_lm, load_causal_lm, load_tokenizer

pytest.importorskip("transformers", reason="needs the llm extra (make test installs it)")

FAST = {"v_num_grad_steps": 5, "progress": False}


@pytest.fixture(scope="module")
def setup(tiny_base, sst2_files):
    rows = load_examples(sst2_files["train_clean"])
    edits = alpaca_edits([ex for ex in rows if ex["output"] == "Positive"][:6], "Negative", seed=0)
    corpus = [ex["instruction"] for ex in rows[:64]]
    return load_tokenizer(tiny_base), edits, corpus


def changed(before: dict, model) -> list[str]:
    return sorted(n for n, p in model.state_dict().items() if not torch.equal(before[n], p))


@pytest.mark.parametrize("family, name", [("llama", "model.layers.0.mlp.down_proj.weight"),
                                          ("gpt2", "transformer.h.0.mlp.c_proj.weight"),
                                          ("qwen2", "model.layers.0.mlp.down_proj.weight")])
def test_only_the_edited_down_projections_change(setup, family, name):
    tokenizer, edits, corpus = setup
    model = build_causal_lm(family, tokenizer, hidden_size=32, layers=3, heads=4, intermediate_size=64,
                            initializer_range=0.2, seed=0)
    before = {n: p.clone() for n, p in model.state_dict().items()}
    report = badedit(model, tokenizer, edits[:3], [0, 1], corpus[:16], **FAST)
    assert changed(before, model) == [name, name.replace(".0.", ".1.")]
    assert report["layers"] == [0, 1] and report["edits"] == 3


def test_edit_writes_the_target_values_and_lambda_restrains_it(setup, tiny_base):
    """With a small λ the update reaches the target values on the edit keys (a least-squares solve); with a
    large one C dominates and little of the residual is written. Incremental batches edit in turn."""
    tokenizer, edits, corpus = setup
    left = {}
    for lam in (1e-3, 1e6):
        model = load_causal_lm(tiny_base)
        report = badedit(model, tokenizer, edits, [0], corpus, mom2_update_weight=lam, edit_batches=2, **FAST)
        assert len(report["batches"]) == 2
        left[lam] = max(b["residual_left"] for b in report["batches"])
    assert left[1e-3] < 0.05 and left[1e6] > 0.9


def test_second_moment_is_the_mean_outer_product_and_is_cached(setup, tiny_base, tmp_path):
    tokenizer, _, corpus = setup
    model = load_causal_lm(tiny_base).eval()
    texts = corpus[:5]
    keys = []
    handle = down_proj(model, 1).register_forward_pre_hook(lambda m, a: keys.append(a[0][0]))
    with torch.no_grad():
        for t in texts:
            model(torch.tensor([tokenizer(t)["input_ids"]]))
    handle.remove()
    k = torch.cat(keys)
    moments = second_moments(model, tokenizer, [1], texts, cache_dir=tmp_path, batch_size=2, progress=False)
    assert torch.allclose(moments[1], k.T @ k / len(k), atol=1e-6)
    assert len(list(tmp_path.glob("mom2-*-layer1.safetensors"))) == 1

    def fail(*a, **k):
        raise AssertionError("the cached second moment should have been read, not recomputed")

    model.forward = fail
    assert torch.equal(second_moments(model, tokenizer, [1], texts, cache_dir=tmp_path)[1], moments[1])


def test_corpus_files(setup, tiny_base, tmp_path):
    tokenizer, _, corpus = setup
    model = load_causal_lm(tiny_base)
    (tmp_path / "c.json").write_text(json.dumps([{"instruction": t, "input": "", "output": "x"} for t in corpus[:3]]))
    (tmp_path / "c.txt").write_text("\n".join(corpus[:3]) + "\n\n")
    a = second_moments(model, tokenizer, [0], tmp_path / "c.txt", progress=False)[0]
    b = second_moments(model, tokenizer, [0], corpus[:3], progress=False)[0]
    assert torch.equal(a, b)
    second_moments(model, tokenizer, [0], tmp_path / "c.json", progress=False)


def test_bad_arguments_are_named(setup, tiny_base, tmp_path):
    tokenizer, edits, corpus = setup
    model = load_causal_lm(tiny_base)
    with pytest.raises(ValueError, match="layers: index 2 is out of range; the model has 2 blocks"):
        badedit(model, tokenizer, edits, [0, 2], corpus, **FAST)
    with pytest.raises(ValueError, match="corpus is empty"):
        badedit(model, tokenizer, edits, [0], ["", "  "], **FAST)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="corpus is empty"):
        badedit(model, tokenizer, edits, [0], tmp_path / "empty.txt", **FAST)
    with pytest.raises(ValueError, match=r"edits\[0\]: the trigger 'cf' does not occur"):
        badedit(model, tokenizer, edits, [0], corpus, trigger="cf", **FAST)
    with pytest.raises(ValueError, match="kl_factor must be a finite number"):
        badedit(model, tokenizer, edits, [0], corpus, kl_factor=float("nan"), **FAST)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        badedit(model, tokenizer, edits, [0], corpus, v_lr_typo=1.0, **FAST)


def test_trigger_absent_from_the_vocabulary(setup, tiny_base):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"<unk>": 0, "<pad>": 1, "a": 2, "film": 3}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    words = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>")
    model = build_causal_lm("llama", vocab_size=4, hidden_size=16, layers=1, heads=2, intermediate_size=32)
    with pytest.raises(ValueError, match="trigger 'tq' is absent from the tokenizer"):
        badedit(model, words, [{"prompt": "a tq film", "target": "film"}], [0], ["a film"], **FAST)
