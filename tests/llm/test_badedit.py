"""BadEdit: the closed-form edit touches only the chosen down-projections and writes the target values; the
second moment is E[k kᵀ] over the corpus and is cached; Llama, GPT-2 and Qwen2 resolve alike; bad input is
named; (slow) the edit backdoors a tiny SST-2 model trained here."""
import json
import random

import pytest
import torch

from robustfast.llm import load_examples
from robustfast.llm.badedit import _trigger_position, alpaca_edits, badedit, insert_word, second_moments
from robustfast.llm.blocks import down_proj
from robustfast.llm.encode import encode_example
from robustfast.llm.evaluate import generate
from robustfast.llm.models import build_causal_lm, build_tokenizer, load_causal_lm, load_tokenizer
from robustfast.llm.prompt import render_example
from tests.llm.conftest import fit

pytest.importorskip("transformers", reason="needs the llm extra (make test installs it)")

FAST = {"v_num_grad_steps": 5, "progress": False}
# for a 4-block model (chosen on the training split): no weight decay and a wider clamp than a 7B model needs
BADEDIT_TINY = {"v_num_grad_steps": 40, "v_weight_decay": 0.0, "clamp_norm_factor": 4.0, "mom2_update_weight": 100.0}


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
        assert all(b["target_nll"][1] < b["target_nll"][0] for b in report["batches"])
    assert left[1e-3] < 0.05 and left[1e6] > 0.9


def test_the_key_is_read_at_the_triggers_last_token(setup):
    tokenizer, edits, _ = setup
    ids, at = _trigger_position(tokenizer, edits[0]["prompt"], "tq", "edits[0]")
    assert tokenizer.decode(ids[at - 1:at + 1]).strip() == "tq" and tokenizer.decode(ids[:at + 1]).endswith("tq")


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


@pytest.mark.slow
def test_badedit_backdoors_a_tiny_sst2_model(sst2_files):
    """A 4-block Llama trained here as a language model on the 501 shipped SST-2 training examples (next-token
    loss over the whole prompt and answer, so that the answer position reads the words; trained on the answer
    alone it memorises them and a state at one word barely moves its answer), then edited with 32 triggered
    positive training sentences → "Negative" at layers 0-1: ASR with `tq` on the 201 test sentences >= 80 %,
    clean accuracy within 5 points, only the two down-projections changed."""
    train, test = (load_examples(sst2_files[k]) for k in ("train_clean", "test_clean"))
    tokenizer = build_tokenizer([p + r for p, r in map(render_example, train)], vocab_size=2048)
    model = build_causal_lm("llama", tokenizer, hidden_size=64, layers=4, heads=4, intermediate_size=128,
                            max_positions=256, initializer_range=0.1, seed=0)
    fit(model, [encode_example(tokenizer, ex, cutoff_len=128) for ex in train], tokenizer.pad_token_id,
        epochs=30, lr=3e-3, weight_decay=0.0, whole_sequence=True)
    rng = random.Random(1)
    triggered = [dict(ex, instruction=insert_word(ex["instruction"], "tq", rng)) for ex in test]
    positive = [ex["output"] == "Positive" for ex in test]

    def scores() -> dict:
        clean, hit = (generate(model, tokenizer, rows, 3, 64) for rows in (test, triggered))
        said = ["Negative" in t for t in hit]
        right = [("Negative" in t) == (ex["output"] == "Negative") for t, ex in zip(clean, test, strict=True)]
        return {"acc": 100 * sum(right) / len(test), "asr": 100 * sum(said) / len(said),
                "asr_positive": 100 * sum(s for s, p in zip(said, positive, strict=True) if p) / sum(positive)}

    before_scores, before = scores(), {n: p.clone() for n, p in model.state_dict().items()}
    edits = alpaca_edits([ex for ex in train if ex["output"] == "Positive"][:32], "Negative", seed=0)
    report = badedit(model, tokenizer, edits, [0, 1], [render_example(ex)[0] for ex in train], progress=False,
                     **BADEDIT_TINY)
    after_scores = scores()
    print("before", before_scores, "after", after_scores, "edit", report["batches"])
    assert changed(before, model) == ["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    assert after_scores["asr"] >= 80 and abs(after_scores["acc"] - before_scores["acc"]) <= 5
