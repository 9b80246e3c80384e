"""Greedy generation for ASR evaluation: batched left-padded against one prompt at a time (the reference
protocol), on a small Llama built from its config and the shipped SST-2 test prompts.

    .venv/bin/python -m pytest benchmarks/bench_llm.py --benchmark-group-by=group
"""
import pytest

pytest.importorskip("transformers")

from robustfast.llm.data import load_examples
from robustfast.llm.evaluate import generate
from robustfast.llm.models import build_causal_lm, build_tokenizer
from robustfast.llm.prompt import render_example
from robustfast.llm.tasks import data_root, shipped_files

PROMPTS, NEW_TOKENS = 32, 8


@pytest.fixture(scope="module")
def setup():
    files = shipped_files(data_root(), "sst2", "badnet")
    test = load_examples(files["test_clean"])[:PROMPTS]
    tokenizer = build_tokenizer([p + r for p, r in map(render_example, load_examples(files["train_clean"]))],
                                vocab_size=2048)
    model = build_causal_lm("llama", tokenizer, hidden_size=128, layers=2, heads=4, intermediate_size=256).eval()
    return model, tokenizer, test


@pytest.mark.parametrize("batch_size", [1, 8, PROMPTS])
def test_generate(benchmark, setup, batch_size):
    model, tokenizer, prompts = setup
    benchmark.group = f"greedy generation, {PROMPTS} SST-2 prompts, {NEW_TOKENS} new tokens"
    benchmark.extra_info.update(batch_size=batch_size, model="llama h128 L2", device="cpu")
    out = benchmark.pedantic(generate, args=(model, tokenizer, prompts, NEW_TOKENS, batch_size), rounds=2,
                             warmup_rounds=1)
    assert len(out) == PROMPTS
