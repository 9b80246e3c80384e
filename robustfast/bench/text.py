"""`robustfast bench text`: MiniLM on the SST-2 sentences. Inference: `predict` (length-sorted batches, padding
columns dropped) against fixed-length padded batches (the usual way: every sentence padded to max_length) and
one sentence at a time. One training epoch: length-grouped batches (`fine_tune`) against the same epoch with every
batch padded to max_length."""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from robustfast._util.tables import save, table
from robustfast.text import encode, fine_tune, predict, sst2, text_classifier


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@torch.no_grad()
def _padded_predict(model, ids, batch_size):
    """Every batch at full max_length: the mask comes from the pad id, the padding columns are still computed."""
    out = []
    for i in range(0, len(ids), batch_size):
        batch = ids[i:i + batch_size]
        mask = batch != model.pad_id
        hidden = model.encoder(input_ids=batch, attention_mask=mask.long()).last_hidden_state
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        out.append(model.head(pooled).argmax(1))
    return torch.cat(out)


def _padded_epoch(model, data, batch_size):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    model.train()
    for i in range(0, len(data), batch_size):
        idx = order[i:i + batch_size]
        mask = data.ids[idx] != model.pad_id
        hidden = model.encoder(input_ids=data.ids[idx], attention_mask=mask.long()).last_hidden_state
        logits = model.head((hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True))
        loss = F.cross_entropy(logits, data.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def run(sentences: int | None, batch_size: int, max_length: int, train: bool, results: str) -> None:
    torch.manual_seed(0)
    model, tokenizer = text_classifier()
    model.eval()
    test = encode(tokenizer, *[v[:sentences] for v in sst2("test")], max_length=max_length)
    n = len(test)
    predict(model, test.ids[:8])  # warm-up
    s_sorted, fast = _timed(lambda: predict(model, test.ids, batch_size))
    s_padded, padded = _timed(lambda: _padded_predict(model, test.ids, batch_size))
    s_one, one = _timed(lambda: predict(model, test.ids, 1))
    note = "shared 2-core machine under heavy load from other jobs: ratios are what count"
    rows = [{"what": "inference", "impl": f"predict, length-sorted, batch {batch_size}", "sentences": n,
             "s": s_sorted, "sentences/s": n / s_sorted, "speedup": s_padded / s_sorted,
             "same predictions": bool(torch.equal(fast, padded) and torch.equal(fast, one)), "note": note},
            {"what": "inference", "impl": f"padded to {max_length}, batch {batch_size}", "sentences": n,
             "s": s_padded, "sentences/s": n / s_padded},
            {"what": "inference", "impl": "one sentence at a time", "sentences": n, "s": s_one,
             "sentences/s": n / s_one, "speedup": s_padded / s_one}]
    if train:
        data = encode(tokenizer, *[v[:sentences] for v in sst2("train")], max_length=max_length)
        grouped, plain = copy.deepcopy(model), copy.deepcopy(model)
        s_grouped, _ = _timed(lambda: fine_tune(grouped, data, epochs=1, batch_size=32, progress=False))
        s_plain, _ = _timed(lambda: _padded_epoch(plain, data, 32))
        rows += [{"what": "training epoch", "impl": "fine_tune, length-grouped, batch 32", "sentences": len(data),
                  "s": s_grouped, "sentences/s": len(data) / s_grouped, "speedup": s_plain / s_grouped,
                  "note": note},
                 {"what": "training epoch", "impl": f"padded to {max_length}, batch 32", "sentences": len(data),
                  "s": s_plain, "sentences/s": len(data) / s_plain}]
    print(table(rows, ["what", "impl", "sentences", "s", "sentences/s", "speedup", "same predictions"]))
    print(f"\nwrote {save(rows, torch.device('cpu'), 'text', results)}")
