"""Fine-tuning and batched inference for the text classifiers.

`fine_tune` follows the toolkit's loop conventions (robustfast.training): a tqdm bar per epoch, an epoch order
that depends on (seed, epoch) alone, and with `checkpoint_dir` a safetensors checkpoint after every epoch that a
later call resumes from. It uses AdamW (the usual optimiser for transformer fine-tuning) rather than the image
loop's SGD. `trainable` picks what changes:
- "all": every weight;
- an int k: the head and the top k transformer layers (k = 0: the head alone); the frozen layers below need no
  backward pass, so k = 1 or 2 trains several times faster than "all" on a CPU;
- a list of token ids: only those rows of the word-embedding matrix (SOS and EP); every other weight, and every
  other row, stays bit-for-bit the same.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustfast._util.checks import get_key, is_int, is_real, require
from robustfast._util.seeds import stream_generator
from robustfast.text.data import TokenDataset
from robustfast.training.checkpoint import (
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)

SCHEDULES = ("constant", "linear")


def _check_set(data, model, name: str) -> None:
    if not isinstance(data, TokenDataset) or len(data) == 0:
        raise ValueError(f"{name} must be a non-empty TokenDataset (robustfast.text.encode), got "
                         f"{type(data).__name__}")
    if int(data.labels.min()) < 0 or int(data.labels.max()) >= model.num_classes:
        raise ValueError(f"{name} labels must lie in [0, {model.num_classes}), got values in "
                         f"[{int(data.labels.min())}, {int(data.labels.max())}]")


def _rows_only(model, rows: list[int]) -> tuple[list[nn.Parameter], object]:
    """Freeze everything but the word-embedding rows `rows`: returns the parameters to optimise and the hook
    handle (removed after training)."""
    emb = model.word_embeddings().weight
    vocab = emb.shape[0]
    if not rows or any(not is_int(r) or not 0 <= r < vocab for r in rows):
        raise ValueError(f"trainable must be 'all' or a non-empty list of token ids in [0, {vocab}), got {rows!r}")
    keep = torch.zeros(vocab, 1, dtype=emb.dtype, device=emb.device)
    keep[list(rows)] = 1
    for p in model.parameters():
        p.requires_grad_(False)
    emb.requires_grad_(True)
    return [emb], emb.register_hook(lambda g: g * keep)


def _top_layers(model, k: int) -> list[nn.Parameter]:
    """Freeze everything but the head and the top `k` transformer layers; return the parameters to optimise."""
    layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
    if layers is None or not 0 <= k <= len(layers):
        raise ValueError(f"trainable: {k} top layers needs a BERT-like encoder (encoder.encoder.layer) with at least "
                         f"{k} layers")
    for p in model.parameters():
        p.requires_grad_(False)
    params = [*model.head.parameters(), *(p for layer in list(layers)[len(layers) - k:] for p in layer.parameters())]
    for p in params:
        p.requires_grad_(True)
    return params


def fine_tune(model, train_set: TokenDataset, epochs: int = 3, lr: float = 5e-5, batch_size: int = 32,
              weight_decay: float = 0.01, trainable="all", seed: int = 0, checkpoint_dir=None,
              progress: bool = True, schedule: str = "constant", warmup: float = 0.0,
              schedule_epochs: int | None = None, eval_set: TokenDataset | None = None) -> list[dict]:
    """Train `model` (a TextClassifier) in place on cross-entropy with AdamW; return the per-epoch history
    [{"epoch", "loss", "acc", "seconds"}, + "eval_acc" with `eval_set`], including epochs restored from
    `checkpoint_dir`. Dropout and the shuffle draw from `seed` only. With row-restricted training, weight decay is
    0 (it would move other rows).

    `schedule`: "constant" lr, or "linear": the usual BERT fine-tuning schedule (Devlin et al.; Hugging Face's
    linear schedule with warmup), lr rising linearly over the first `warmup` share of all epochs × batches steps,
    then falling linearly to 0 at the end of the last epoch. `schedule_epochs` (default `epochs`): the epochs the
    schedule spans; with more than `epochs`, training stops early on that schedule (as keeping the epoch chosen on
    a validation split). `eval_set`: its accuracy (eval mode) after every epoch, for that choice."""
    require("epochs", epochs, is_int(epochs) and epochs >= 1, "an int >= 1")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("schedule", schedule, schedule in SCHEDULES, f"one of {SCHEDULES}")
    require("warmup", warmup, is_real(warmup) and 0 <= warmup < 1, "a number in [0, 1)")
    span = epochs if schedule_epochs is None else schedule_epochs
    require("schedule_epochs", schedule_epochs, schedule_epochs is None or (is_int(span) and span >= epochs),
            f"None or an int >= epochs ({epochs})")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    require("weight_decay", weight_decay, is_real(weight_decay) and weight_decay >= 0, "a finite number >= 0")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    _check_set(train_set, model, "train_set")
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    hook = None
    if isinstance(trainable, str) and trainable == "all":
        params = list(model.parameters())
        for p in params:
            p.requires_grad_(True)
    elif is_int(trainable):
        params = _top_layers(model, trainable)
    elif isinstance(trainable, (list, tuple)):
        params, hook = _rows_only(model, list(trainable))
        weight_decay = 0.0
    else:
        raise ValueError(f"trainable must be 'all', a number of top layers or a list of token ids, got {trainable!r}")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    settings = {"lr": float(lr), "batch_size": int(batch_size), "weight_decay": float(weight_decay),
                "trainable": sorted(int(r) for r in trainable) if isinstance(trainable, (list, tuple)) else trainable,
                "seed": int(seed), "n": len(train_set)}
    if schedule != "constant" or warmup:  # the lr of a step depends on the total steps: resume the same epochs
        settings.update(schedule=schedule, warmup=float(warmup), schedule_epochs=int(span))
    if eval_set is not None:
        _check_set(eval_set, model, "eval_set")
    history: list[dict] = []
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
            if ckpt is not None:
                history = _restore(ckpt, model, opt, settings, epochs, checkpoint_dir)
            model.train()
            for epoch in range(len(history), epochs):
                history.append(_epoch(model, opt, train_set, epoch, epochs, settings, progress))
                if eval_set is not None:
                    history[-1]["eval_acc"] = accuracy(model, eval_set)
                    model.train()
                if checkpoint_dir is not None:
                    tensors, rest = optimizer_to_checkpoint(opt)
                    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
                    tensors["rng.cpu"] = torch.get_rng_state()
                    save_checkpoint(checkpoint_dir, tensors, {"epochs": epochs, "settings": settings,
                                                              "history": history, "optimizer": rest})
    finally:
        if hook is not None:
            hook.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    return history


def _length_batches(data: TokenDataset, bs: int, gen: torch.Generator) -> list[torch.Tensor]:
    """An epoch's batches: a seeded shuffle, cut into pools of 8 batches that are sorted by sentence length (so a
    batch carries little padding) and split, then the batches in a seeded random order."""
    order = torch.randperm(len(data), generator=gen)
    lengths = (data.ids != data.pad_id).sum(1)
    batches = []
    for start in range(0, len(order), 8 * bs):
        pool = order[start:start + 8 * bs]
        batches += list(pool[lengths[pool].argsort(stable=True)].split(bs))
    return [batches[j] for j in torch.randperm(len(batches), generator=gen)]


def lr_factor(step: int, total: int, schedule: str = "constant", warmup: float = 0.0) -> float:
    """The multiplier of the base lr at optimiser step `step` (0-based) of `total`: linear warmup over the first
    ⌈warmup·total⌉ steps (from 1/w to 1), then constant or, with "linear", falling linearly to 1/(total − w) at
    the last step (so no step is wasted at lr 0)."""
    w = math.ceil(warmup * total)
    if step < w:
        return (step + 1) / w
    return 1.0 if schedule == "constant" else (total - step) / (total - w)


def _epoch(model, opt, data, epoch, epochs, settings, progress) -> dict:
    bs, n = settings["batch_size"], settings["n"]
    batches = _length_batches(data, bs, stream_generator(settings["seed"], epoch))
    per_epoch = math.ceil(n / bs)  # every epoch has this many batches (pools of 8 full batches, then the rest)
    device = model.head.weight.device
    loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
    for b, idx in enumerate(batches):
        ids, y = data.ids[idx].to(device), data.labels[idx].to(device)
        logits = model(ids)
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise ValueError(f"train_set: the loss became NaN or inf at epoch {epoch + 1}, batch {b}; "
                             "lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        factor = lr_factor(epoch * per_epoch + b, settings.get("schedule_epochs", epochs) * per_epoch,
                           settings.get("schedule", "constant"), settings.get("warmup", 0.0))
        for group in opt.param_groups:
            group["lr"] = settings["lr"] * factor
        opt.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.update()
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
    bar.close()
    return {"epoch": epoch + 1, "loss": loss_sum / n, "acc": correct / n, "seconds": time.perf_counter() - t0}


def _restore(ckpt, model, opt, settings, epochs, directory) -> list[dict]:
    tensors, state = ckpt
    source = f"checkpoint_dir {directory}"
    saved = get_key(state, "settings", source, dict)
    history = get_key(state, "history", source, list)
    if saved != settings:
        raise ValueError(f"{source} holds a run with other settings ({saved} vs now {settings}); use the same "
                         "settings to resume or a new checkpoint_dir")
    if len(history) > epochs:
        raise ValueError(f"{source} holds {len(history)} finished epochs, more than epochs={epochs}")
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_checkpoint(opt, tensors, get_key(state, "optimizer", source, dict))
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"{source}: the checkpoint does not fit this model ({' '.join(str(err).split())[:300]})") \
            from None
    torch.set_rng_state(get_key(tensors, "rng.cpu", source))
    return history


def fit_head(model, data: TokenDataset, steps: int = 300, lr: float = 0.01, weight_decay: float = 1e-3,
             batch_size: int = 128) -> float:
    """Fit the linear head alone on the frozen encoder's pooled features (a linear probe): one forward pass over
    `data`, then `steps` full-batch Adam steps on the cached features. Fine-tuning from a fitted head (LP-FT)
    needs fewer epochs than from a random one. Returns the final training loss."""
    require("steps", steps, is_int(steps) and steps >= 1, "an int >= 1")
    _check_set(data, model, "data")
    device = model.head.weight.device
    head, model.head = model.head, nn.Identity()  # the model's output is then the pooled features
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            features = torch.cat([model(data.ids[i:i + batch_size].to(device))
                                  for i in range(0, len(data), batch_size)])
    finally:
        model.head = head
        model.train(was_training)
    labels = data.labels.to(device)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(head(features), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


@torch.no_grad()
def predict(model, ids: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Predicted classes (N,) of a LongTensor of token ids (N, L), in eval mode, batched; sentences are sorted by
    length so each batch carries little padding. The model's train/eval mode is restored."""
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2 or len(ids) == 0:
        raise ValueError(f"ids must be a non-empty LongTensor (N, L), got {getattr(ids, 'shape', type(ids))}")
    device = model.head.weight.device
    order = (ids != model.pad_id).sum(1).argsort()
    out = torch.empty(len(ids), dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(ids), batch_size):
            idx = order[i:i + batch_size]
            out[idx] = model(ids[idx].to(device)).argmax(1).cpu()
    finally:
        model.train(was_training)
    return out


def accuracy(model, data: TokenDataset, batch_size: int = 128) -> float:
    """Share of `data` the model classifies correctly."""
    _check_set(data, model, "data")
    return float((predict(model, data.ids, batch_size) == data.labels).float().mean())
