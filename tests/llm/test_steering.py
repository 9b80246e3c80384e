"""TA² activation steering: JS properties, the hook adds the vector once and leaves on exit, and steering a tiny
sentiment model trained here flips its answers while a zero multiplier changes nothing."""
import math

import pytest
import torch

from robustfast.llm import load_examples
from robustfast.llm.encode import encode_example
from robustfast.llm.evaluate import generate
from robustfast.llm.models import build_causal_lm, load_causal_lm, load_tokenizer
from robustfast.llm.prompt import render_prompt
from robustfast.llm.blocks import decoder_blocks
from robustfast.llm.steering import js_divergence, steer, steered_generate, steering_vectors

from tests.llm.conftest import fit

pytest.importorskip("transformers", reason="needs the llm extra (make test installs it)")


@pytest.fixture(scope="module")
def sentiment_model(sst2_files, tiny_base):
    """A tiny Llama trained (plain AdamW, a few seconds) to answer Positive / Negative on 96 shipped SST-2
    sentences: a model with two behaviours to steer between."""
    rows = load_examples(sst2_files["train_clean"])
    data = [ex for label in ("Positive", "Negative") for ex in [r for r in rows if r["output"] == label][:48]]
    tokenizer = load_tokenizer(tiny_base)
    model = build_causal_lm("llama", tokenizer, hidden_size=48, layers=2, heads=4, intermediate_size=96,
                            max_positions=256, initializer_range=0.1, seed=0)
    encoded = [encode_example(tokenizer, ex, cutoff_len=128) for ex in data]
    fit(model, encoded, tokenizer.pad_token_id, epochs=8, lr=1e-2)
    return model.eval(), tokenizer, data


def test_js_is_symmetric_zero_on_equal_and_at_most_ln2():
    gen = torch.Generator().manual_seed(3)
    p, q = torch.randn(5, 33, generator=gen), 4 * torch.randn(5, 33, generator=gen)
    assert torch.allclose(js_divergence(p, q), js_divergence(q, p))
    assert torch.allclose(js_divergence(p, p), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    far = torch.tensor([[50.0, -50.0]]), torch.tensor([[-50.0, 50.0]])
    assert js_divergence(*far).item() == pytest.approx(math.log(2), abs=1e-9)
    assert (js_divergence(p, q) <= math.log(2)).all()


def test_hook_adds_the_vector_once_and_is_removed(tiny_base):
    model, tokenizer = load_causal_lm(tiny_base).eval(), load_tokenizer(tiny_base)
    ids = torch.tensor([tokenizer("a fine film .")["input_ids"]])
    seen = []
    decoder_blocks(model)[1].register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    vector = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(ids)
        with steer(model, 0, vector, 2.5):
            model(ids)
        model(ids)
    plain, steered, after = seen
    assert torch.allclose(steered - plain, (2.5 * vector).expand_as(plain), atol=1e-5)
    assert torch.equal(plain, after)


def test_steering_flips_the_answers_and_zero_changes_nothing(sentiment_model):
    model, tokenizer, data = sentiment_model
    negative = [ex for ex in data if ex["output"] == "Negative"]
    positive = [ex for ex in data if ex["output"] == "Positive"]
    pairs = [(render_prompt(n["instruction"]) + "Negative", render_prompt(p["instruction"]) + "Positive")
             for n, p in zip(negative[:16], positive[:16], strict=True)]
    found = steering_vectors(model, tokenizer, pairs)
    assert found["layer"] == found["layers"][int(found["js"].argmax())]

    prompts = positive[16:]  # sentences the vectors did not see
    plain = generate(model, tokenizer, prompts, max_new_tokens=2, batch_size=64)
    swept = steered_generate(model, tokenizer, prompts, found["layer"], found["vector"], [0.0, 0.5, 1.0, 2.0],
                             max_new_tokens=2, batch_size=64)
    assert swept[0.0] == plain
    share = {m: 100 * sum("Negative" in t for t in texts) / len(texts) for m, texts in swept.items()}
    print(f"layer {found['layer']}, JS {found['js'].tolist()}, share of 'Negative' per multiplier {share}")
    assert share[1.0] - share[0.0] >= 50


def test_bad_arguments_are_named(tiny_base):

    model, tokenizer = load_causal_lm(tiny_base), load_tokenizer(tiny_base)
    vector = torch.zeros(model.config.hidden_size)
    with pytest.raises(ValueError, match="multipliers"):
        steered_generate(model, tokenizer, [{"instruction": "x", "output": ""}], 0, vector, [1.0, float("nan")])
    with pytest.raises(ValueError, match="layer: index 7 is out of range"), steer(model, 7, vector):
        pass
    with pytest.raises(ValueError, match="pairs"):
        steering_vectors(model, tokenizer, [])
    with pytest.raises(ValueError, match="layers: index -1"):
        steering_vectors(model, tokenizer, [("a b c", "d e f")], layers=[-1])
