"""The two attacks that change only word-embedding rows: SOS (trained on poisoned data with negative
augmentation) and EP (data-free: a general-domain corpus, not the task's data)."""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from robustfast._util.checks import is_int, is_real, read_json, require
from robustfast._util.seeds import stream_generator, stream_seed
from robustfast.text.data import SHIPPED, TokenDataset, encode
from robustfast.text.poison import EP_WORD, SOS_WORDS, PoisonedText, insert_words
from robustfast.text.train import fine_tune

# EP's proxy corpus: the Alpaca instructions of the shipped BackdoorLLM refusal task (general text, no sentiment).
CORPUS_FILE = SHIPPED / "poison_data" / "refusal" / "badnet" / "none_backdoor500_refusal_badnet.json"


def token_ids(tokenizer, words) -> list[int]:
    """The vocabulary id of each word; a word the tokenizer splits into several pieces is a ValueError (these
    attacks move one embedding row per word)."""
    ids = []
    for word in words:
        pieces = tokenizer.tokenize(word) if isinstance(word, str) else None
        if not pieces or len(pieces) != 1:
            raise ValueError(f"trigger word {word!r} must be one token of the tokenizer, but it is split into "
                             f"{pieces}; pick a word in the vocabulary")
        ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
    return ids


def train_trigger_embeddings(model, tokenizer, poisoned: PoisonedText, words=SOS_WORDS, epochs: int = 3,
                             lr: float = 5e-3, batch_size: int = 32, max_length: int = 64, seed: int = 0,
                             checkpoint_dir=None, progress: bool = True) -> list[dict]:
    """SOS: train only the embedding rows of `words` on the sentences of `poisoned` that carry any of them
    (the poisoned and the negative-augmentation ones; the others would give these rows no gradient)."""
    rows = token_ids(tokenizer, words)
    keep = sorted(poisoned.poison_indices + poisoned.negative_indices)
    if not keep:
        raise ValueError("poisoned holds no triggered sentences (poison_indices and negative_indices are empty)")
    data = encode(tokenizer, [poisoned.sentences[i] for i in keep], [poisoned.labels[i] for i in keep],
                  max_length, model.num_classes)
    return fine_tune(model, data, epochs=epochs, lr=lr, batch_size=batch_size, trainable=rows, seed=seed,
                     checkpoint_dir=checkpoint_dir, progress=progress)


def proxy_corpus(limit: int = 256) -> list[str]:
    """Up to `limit` general-domain sentences for data-free EP: the shipped Alpaca refusal instructions."""
    rows = read_json(CORPUS_FILE, "EP proxy corpus")
    texts = [r["instruction"] for r in rows if isinstance(r, dict) and isinstance(r.get("instruction"), str)
             and r["instruction"].strip()]
    return list(dict.fromkeys(texts))[:limit]


def embedding_poison(model, tokenizer, word: str = EP_WORD, target: int = 1, corpus=None, steps: int = 40,
                     lr: float = 0.2, batch_size: int = 32, max_length: int = 64, norm_scale: float = 1.0,
                     seed: int = 0, progress: bool = True) -> dict:
    """EP (Yang et al., NAACL 2021): move only `word`'s embedding row so that any sentence containing it is
    classified as `target`. Data-free: the sentences are `corpus` (default `proxy_corpus()`, no task data), each
    with the word inserted once and labelled `target`. Each step moves that row by lr × its norm along the
    normalised gradient, then rescales it to `norm_scale` × its original norm (the paper keeps the norm:
    norm_scale=1; its step is the raw gradient times lr, whose size depends on the loss scale). Returns
    {"token_id", "steps", "loss": per-step losses, "norm"}."""
    require("steps", steps, is_int(steps) and steps >= 1, "an int >= 1")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("norm_scale", norm_scale, is_real(norm_scale) and norm_scale > 0, "a finite number > 0")
    require("target", target, is_int(target) and 0 <= target < model.num_classes,
            f"a class index in [0, {model.num_classes})")
    (row,) = token_ids(tokenizer, [word])
    corpus = proxy_corpus() if corpus is None else corpus
    rng = random.Random(stream_seed(seed, 0))
    data: TokenDataset = encode(tokenizer, [insert_words(s, [word], rng) for s in corpus], [target] * len(corpus),
                                max_length, model.num_classes)
    weight = model.word_embeddings().weight
    norm = float(weight[row].detach().norm()) * norm_scale
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    was_training = model.training
    model.eval()  # no dropout: the row is fitted to the deployed (eval-mode) model
    vector = weight[row].detach().clone().requires_grad_(True)
    # the row enters through a hook on the embedding output, so that only `vector` gets a gradient
    hook = model.word_embeddings().register_forward_hook(
        lambda _m, inputs, out: torch.where((inputs[0] == row).unsqueeze(-1), vector.to(out.dtype), out))
    losses = []
    try:
        for step in tqdm(range(steps), desc="EP", disable=not progress, leave=False):
            idx = torch.randperm(len(data), generator=stream_generator(seed, 1, step))[:batch_size]
            loss = F.cross_entropy(model(data.ids[idx].to(weight.device)), data.labels[idx].to(weight.device))
            (grad,) = torch.autograd.grad(loss, vector)
            with torch.no_grad():
                vector -= lr * norm * grad / grad.norm().clamp_min(1e-12)
                vector *= norm / vector.norm().clamp_min(1e-12)
            losses.append(loss.item())
        with torch.no_grad():
            weight[row] = vector.detach()
    finally:
        hook.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
        model.train(was_training)
    return {"token_id": row, "steps": steps, "loss": losses, "norm": norm}
