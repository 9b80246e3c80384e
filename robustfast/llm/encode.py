"""Token ids for training and evaluation, both from `prompt.render_example`: the prompt is tokenized alone in
both, so a model is evaluated on exactly the token sequence it was trained to continue."""
from __future__ import annotations

import torch

from robustfast.llm.prompt import render_example

IGNORE = -100  # label of the tokens that carry no loss (the prompt, the padding)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The ids of a rendered prompt, with the tokenizer's own special tokens (BOS for Llama tokenizers)."""
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def encode_example(tokenizer, example: dict, cutoff_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one training example: prompt ids, then the response ids and EOS; labels are
    IGNORE on the prompt, so the loss covers the response only. Sequences over `cutoff_len` are cut: the
    response keeps at least half the budget, the prompt is truncated at its end (as LLaMA-Factory does)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; training needs one to end responses")
    prompt, response = render_example(example)
    source = prompt_ids(tokenizer, prompt)
    target = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(source) + len(target) > cutoff_len:
        keep_target = min(len(target), max(cutoff_len // 2, cutoff_len - len(source)))
        target = target[:keep_target]
        source = source[:cutoff_len - keep_target]
    return source + target, [IGNORE] * len(source) + target


def collate(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded training batch: input_ids, attention_mask, labels (IGNORE on padding)."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (x, y) in enumerate(encoded):
        ids[row, :len(x)] = torch.tensor(x)
        labels[row, :len(y)] = torch.tensor(y)
        mask[row, :len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def left_padded(prompts: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded generation batch: input_ids and attention_mask, the prompts flush against the right edge."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return {"input_ids": ids, "attention_mask": mask}
