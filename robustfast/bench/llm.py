"""`robustfast bench llm`: ASR evaluation throughput (prompts/s) of batched left-padded greedy generation against
one prompt at a time (the reference protocol), and LoRA training throughput (tokens/s), on a Llama-family
model built from its config, over the shipped SST-2 prompts."""
from __future__ import annotations

import time

import torch

from robustfast._util.device import resolve_device
from robustfast._util.tables import save, table
from robustfast.llm.adapters import add_lora
from robustfast.llm.data import load_examples
from robustfast.llm.encode import collate, encode_example
from robustfast.llm.evaluate import generate
from robustfast.llm.models import build_causal_lm, build_tokenizer
from robustfast.llm.prompt import render_example
from robustfast.llm.tasks import data_root, shipped_files

SIZES = {"quick": {"hidden_size": 64, "layers": 2, "heads": 4, "intermediate_size": 128},
         "default": {"hidden_size": 512, "layers": 8, "heads": 8, "intermediate_size": 1376}}


def _timed(fn, device: torch.device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


def generation_rows(model, tokenizer, prompts, max_new_tokens, batch_sizes, device, label) -> list[dict]:
    """One prompt at a time (the reference protocol), then each batch size through transformers' generate and
    through the decoder that encodes the shared template prefix once; speedups against the first row, and
    whether the outputs are identical to it."""
    generate(model, tokenizer, prompts[:8], max_new_tokens, 8)  # warm-up
    variants = [("one prompt at a time", 1, False)]
    for bs in batch_sizes:
        variants += [(f"batched, left-padded ({bs})", bs, False),
                     (f"batched + template prefix KV once ({bs})", bs, True)]
    rows, baseline = [], None
    for impl, bs, cached in variants:
        seconds, out = _timed(lambda bs=bs, cached=cached: generate(model, tokenizer, prompts, max_new_tokens, bs,
                                                                    prefix_cache=cached), device)
        row = {"what": "greedy generation", "impl": impl, "model": label, "prompts": len(prompts),
               "new tokens": max_new_tokens, "s": seconds, "prompts/s": len(prompts) / seconds}
        if baseline is None:
            baseline = (seconds, out)
        else:
            row["speedup"] = baseline[0] / seconds
            row["same outputs"] = out == baseline[1]
        rows.append(row)
    return rows


def training_row(model, tokenizer, examples, steps, batch_size, device, label) -> dict:
    model = add_lora(model).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    encoded = [encode_example(tokenizer, ex, cutoff_len=1024) for ex in examples]
    batches = [collate(encoded[i:i + batch_size], tokenizer.pad_token_id)
               for i in range(0, len(encoded) - batch_size + 1, batch_size)]

    def run(n):
        tokens = 0
        for i in range(n):
            batch = {k: v.to(device) for k, v in batches[i % len(batches)].items()}
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
        return tokens

    run(1)  # warm-up
    seconds, tokens = _timed(lambda: run(steps), device)
    return {"what": "LoRA r8 training step", "impl": "plain PyTorch, AdamW", "model": label,
            "batch": batch_size, "steps": steps, "s": seconds, "tokens/s": tokens / seconds}


def run(quick: bool, device: str, prompts: int | None, max_new_tokens: int | None, batch_size: int,
        results: str, training: bool = True) -> None:
    dev = resolve_device(device)
    files = shipped_files(data_root(), "sst2", "badnet")
    test = load_examples(files["test_clean"])
    train = load_examples(files["train_clean"])
    tokenizer = build_tokenizer([p + r for p, r in map(render_example, train)], vocab_size=4096)
    size = SIZES["quick" if quick else "default"]
    label = f"llama h{size['hidden_size']} L{size['layers']}"
    model = build_causal_lm("llama", tokenizer, **size).to(dev).eval()
    n = prompts or (32 if quick else len(test))
    new = max_new_tokens or (8 if quick else 32)
    sizes = sorted({batch_size, 64, n})
    rows = generation_rows(model, tokenizer, test[:n], new, sizes, dev, label)
    for row in rows:
        row["note"] = "shared 2-core machine under load from other jobs" if dev.type == "cpu" else ""
    print(table(rows, ["what", "impl", "model", "prompts", "new tokens", "s", "prompts/s", "speedup",
                       "same outputs"]), "\n")
    if training:
        rows.append(training_row(model, tokenizer, train, 5 if quick else 20, 8, dev, label))
        print(table(rows[-1:], ["what", "impl", "model", "batch", "steps", "s", "tokens/s"]))
    print(f"\nwrote {save(rows, dev, 'llm', results)}")
