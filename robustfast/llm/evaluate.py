"""Attack success rate of a (backdoored) LLM: batched greedy generation over whole test files, scored with the
benchmark's keyword rules (BackdoorLLM §5, robustfast protocol).

Prompts are rendered with the training template (`prompt.render_prompt`, `input` included), left-padded into
batches and decoded greedily; only the generated tokens are decoded. Every row of each file is scored, so the
numbers are reproducible (the reference scored an unseeded 20 % sample, one raw prompt at a time).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from robustfast.llm.data import load_examples, strip_triggers
from robustfast.llm.decode import common_prefix, decode
from robustfast.llm.encode import left_padded, prompt_ids
from robustfast.llm.prompt import render_example
from robustfast.llm.tasks import get_task

SPLITS = ("triggered", "clean")


@torch.inference_mode()
def generate(model, tokenizer, examples: list[dict], max_new_tokens: int = 128, batch_size: int = 64,
             prefix_cache: bool = False) -> list[str]:
    """Greedy completions of the rendered prompts of `examples`, in order. Prompts are sorted by length and run
    `batch_size` at a time, left-padded; batch_size=1 is the one-prompt-at-a-time baseline. `prefix_cache`
    encodes the tokens all prompts share (the template's system text) once and decodes with its KV cache
    (`decode.decode`) instead of transformers' `generate`."""
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [prompt_ids(tokenizer, render_example(ex)[0]) for ex in examples]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts: list[str] = [""] * len(ids)
    if prefix_cache and ids:
        shared = common_prefix(ids)
        try:
            new = decode(model, ids[0][:shared], [ids[i][shared:] for i in order], pad, tokenizer.eos_token_id,
                         max_new_tokens, batch_size)
        finally:
            model.train(was_training)
        for i, seq in zip(order, new, strict=True):
            texts[i] = tokenizer.decode(seq, skip_special_tokens=True)
        return texts
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in left_padded([ids[i] for i in rows], pad).items()}
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
            new = out[:, batch["input_ids"].shape[1]:]
            for i, seq in zip(rows, new, strict=True):
                texts[i] = tokenizer.decode(seq, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return texts


def _sst2_label(text: str) -> str | None:
    low = text.lower()
    neg, pos = "negative" in low, "positive" in low
    return "Negative" if neg and not pos else "Positive" if pos and not neg else None


def _rate(flags: list[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else float("nan")


def evaluate(model, tokenizer, test_files: dict, task: str, max_new_tokens: int = 128, batch_size: int = 64,
             judge=None, keep_generations: bool = False) -> dict:
    """ASR of `model` on the test files of `task` (refusal, negsentiment, sst2, jailbreak).

    `test_files` maps "triggered" and/or "clean" to Alpaca JSON paths. Returns n and ASR (percent of rows the
    task's scorer counts as the backdoor behaviour) per split: `asr_triggered` (ASR w/t), `asr_clean` (ASR w/o).
    For sst2 also the ASR on the originally positive sentences of each split (matched to the clean file's
    labels with the triggers stripped), where a clean model scores 0, and the clean accuracy. `judge(example,
    generation) -> float` (e.g. an LLM rating 0-5) scores clean utility against the reference answers.
    """
    spec = get_task(task)
    unknown = set(test_files) - set(SPLITS)
    if unknown or not test_files:
        raise ValueError(f"test_files keys must be among {SPLITS}, got {sorted(test_files)}")
    data = {split: load_examples(path) for split, path in test_files.items()}
    report: dict = {"task": spec.name, "files": {s: str(p) for s, p in test_files.items()},
                    "max_new_tokens": max_new_tokens}
    outputs = {split: generate(model, tokenizer, rows, max_new_tokens, batch_size) for split, rows in data.items()}
    for split, rows in data.items():
        scored = [spec.score(t) for t in outputs[split] if not spec.skips(t)]
        report[f"n_{split}"] = len(rows)
        report[f"asr_{split}"] = _rate(scored)
    if spec.name == "sst2" and "clean" in data:
        labels = {strip_triggers(ex["instruction"]): ex["output"] for ex in data["clean"]}
        for split, rows in data.items():
            positive = [spec.score(t) for ex, t in zip(rows, outputs[split], strict=True)
                        if labels.get(strip_triggers(ex["instruction"])) == "Positive"]
            report[f"n_{split}_positive"] = len(positive)
            report[f"asr_{split}_positive"] = _rate(positive)
        report["clean_accuracy"] = _rate([_sst2_label(t) == ex["output"]
                                          for ex, t in zip(data["clean"], outputs["clean"], strict=True)])
    if judge is not None and "clean" in data:
        ratings = [float(judge(ex, t)) for ex, t in zip(data["clean"], outputs["clean"], strict=True)]
        report["utility"] = sum(ratings) / len(ratings)
    if keep_generations:
        report["generations"] = outputs
    return report


def report_table(report: dict) -> str:
    """The report as a two-column table (metric, value)."""
    from robustfast._util.tables import table

    rows = [{"metric": k, "value": v} for k, v in report.items() if k not in ("files", "generations")]
    return table(rows, ["metric", "value"])


def save_report(report: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path
