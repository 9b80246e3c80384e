"""Batched decoding of prompts that share a prefix: the prefix is encoded once and its KV cache copied into each
batch; the rest of each prompt is left-padded after it, with position ids that follow the mask, so every row
sees exactly the positions it would alone. Greedy, or sampled (top-k, top-p, temperature) from a seeded
generator."""
from __future__ import annotations

import copy

import torch


def common_prefix(rows: list[list[int]]) -> int:
    """Length of the longest token prefix shared by all rows, leaving each row at least one token of its own."""
    n = min(map(len, rows)) - 1
    first = rows[0]
    for row in rows[1:]:
        k = 0
        while k < n and row[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def next_tokens(logits: torch.Tensor, sample: bool, generator, top_k: int, top_p: float,
                 temperature: float) -> torch.Tensor:
    if not sample:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    ordered, index = probs.sort(-1, descending=True)
    drop = ordered.cumsum(-1) - ordered > top_p  # keep the smallest set whose mass reaches top_p
    probs = probs.scatter(-1, index, ordered.masked_fill(drop, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def decode(model, head: list[int], tails: list[list[int]], pad: int, eos: int | None, max_new_tokens: int,
           batch_size: int, sample: bool = False, generator=None, top_k: int = 50, top_p: float = 1.0,
           temperature: float = 1.0) -> list[list[int]]:
    """New token ids (up to and without EOS) of head + tail for each tail, `batch_size` tails at a time, the
    head's KV cache computed once."""
    device = next(model.parameters()).device
    cache = model(input_ids=torch.tensor([head], device=device), use_cache=True).past_key_values if head else None
    out = []
    for start in range(0, len(tails), batch_size):
        out += _decode_batch(model, tails[start:start + batch_size], cache, len(head), pad, eos, max_new_tokens,
                             sample, generator, top_k, top_p, temperature)
    return out


def _decode_batch(model, rows, prefix_cache, prefix_len, pad, eos, max_new_tokens, sample, generator, top_k,
                  top_p, temperature) -> list[list[int]]:
    device = next(model.parameters()).device
    n, width = len(rows), max(map(len, rows))
    ids = torch.full((n, width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((n, prefix_len + width), dtype=torch.long, device=device)
    mask[:, :prefix_len] = 1
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, device=device)
        mask[i, prefix_len + width - len(r):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_len:]
    cache = None
    if prefix_cache is not None:
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(n)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    out = []
    step_ids, step_pos = ids, positions
    for _ in range(max_new_tokens):
        result = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=cache,
                       use_cache=True)
        cache = result.past_key_values
        token = next_tokens(result.logits[:, -1], sample, generator, top_k, top_p, temperature)
        token = torch.where(done, torch.full_like(token, pad), token)
        out.append(token)
        if eos is not None:
            done |= token == eos
        if bool(done.all()):
            break
        step_ids, step_pos = token[:, None], step_pos[:, -1:] + 1
        mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
    new = torch.stack(out, dim=1).tolist()
    return [seq[:seq.index(eos)] if eos in seq else seq for seq in new]
