"""The per-attack table on SST-2: fine-tune a clean classifier, attack copies of it, measure CA and ASR.

BadNets and AddSent fine-tune a copy of the clean model on the poisoned training sentences (the attacker
fine-tunes a clean model); SOS trains only its trigger embeddings on a copy; EP moves one embedding row of a copy,
data-free. Each row also carries the ASR of the clean model under the same trigger (the base rate), and SOS the
largest ASR of any single trigger word.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from robustfast._util.atomic import write_json
from robustfast._util.checks import read_json
from robustfast._util.seeds import stream_generator
from robustfast.text.data import encode, sst2
from robustfast.text.embedding import embedding_poison, train_trigger_embeddings
from robustfast.text.evaluate import asr, clean_accuracy, evaluate_attack
from robustfast.text.model import load_classifier, save_classifier, text_classifier
from robustfast.text.poison import SOS_WORDS, poison_text
from robustfast.text.train import fine_tune, fit_head

SUITE_ATTACKS = ("badnets", "addsent", "sos", "ep")


@dataclass
class Recipe:
    """Training settings of the suite. The defaults are the full recipe: every layer fine-tuned with the usual BERT
    recipe (AdamW lr 5e-5, weight decay 0.01, batch 16, linear warmup over 10 % of the steps then linear decay,
    dropout 0.1 on the pooled features), stopped after 7 epochs of a 10-epoch schedule; lr and epochs
    chosen on a held-out fifth of the training sentences (`cross_validate(..., fold_ids=[0])`; README: Text
    backdoors), never on the test split.

    `trainable`: "all" or the number of top layers fine-tuned (the CI tests use 2 on a CPU). BadNets/AddSent
    fine-tune a copy of the clean model for `attack_epochs` at `attack_lr` (None: lr) with the same schedule
    shape over those epochs. SOS trains its rows for `sos_epochs` at `sos_lr` on the negative augmentation of
    `sos_subsets` (see `poison_text`); EP takes `ep_steps` steps of `ep_batch_size` sentences."""
    epochs: int = 7
    schedule_epochs: int | None = 10  # the epochs the lr schedule spans (None: epochs)
    trainable: str | int = "all"
    lr: float = 5e-5
    schedule: str = "linear"
    warmup: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    batch_size: int = 16
    attack_epochs: int = 2
    attack_lr: float | None = 1e-4
    sos_epochs: int = 12
    sos_lr: float = 2e-2
    sos_subsets: str = "proper"
    ep_steps: int = 40
    ep_batch_size: int = 32
    probe: bool = False  # fit the head on the frozen encoder first (fit_head), then fine-tune
    rate: float = 0.1
    target: int = 1
    max_length: int = 64
    seed: int = 0
    train_size: int | None = None  # the first sentences of the training split only (the demo's quick run)

    def train(self) -> tuple[list[str], list[int]]:
        s, y = sst2("train")
        return s[:self.train_size], y[:self.train_size]

    def fit(self, model, data, attack: bool = False, **kwargs) -> list[dict]:
        """fine_tune `model` on `data` with this recipe: the clean run (epochs of a schedule_epochs schedule, lr)
        or, with `attack`, the BadNets/AddSent run from the clean model (attack_epochs, attack_lr)."""
        if attack:
            epochs, lr, span = self.attack_epochs, self.attack_lr or self.lr, None
        else:
            epochs, lr, span = self.epochs, self.lr, self.schedule_epochs
        return fine_tune(model, data, epochs, lr, self.batch_size, weight_decay=self.weight_decay,
                         trainable=self.trainable, seed=self.seed, schedule=self.schedule, warmup=self.warmup,
                         schedule_epochs=span, **kwargs)


def cross_validate(recipe: Recipe, folds: int = 5, fold_ids=None, encoder=None, progress: bool = False) -> list[list]:
    """Choose the clean fine-tuning recipe without the test split: the training sentences are cut into `folds`
    seeded folds; for each fold in `fold_ids` (default all), a fresh classifier is fine-tuned with `recipe` on
    the other folds and its accuracy on the held-out fold is measured after every epoch. Returns one list of
    per-epoch held-out accuracies per fold (their mean over folds, per epoch, is the selection criterion)."""
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2, got {folds!r}")
    sentences, labels = recipe.train()
    order = torch.randperm(len(sentences), generator=stream_generator(recipe.seed, 19)).tolist()
    curves = []
    for k in range(folds) if fold_ids is None else fold_ids:
        held = set(order[k::folds])
        model, tokenizer = text_classifier(encoder, seed=recipe.seed, dropout=recipe.dropout)
        parts = [encode(tokenizer, [s for i, s in enumerate(sentences) if (i in held) == keep],
                        [y for i, y in enumerate(labels) if (i in held) == keep], recipe.max_length)
                 for keep in (False, True)]
        history = recipe.fit(model, parts[0], eval_set=parts[1], progress=progress)
        curves.append([h["eval_acc"] for h in history])
    return curves


CLEAN_FIELDS = ("epochs", "schedule_epochs", "trainable", "lr", "schedule", "warmup", "weight_decay", "dropout",
                "batch_size", "probe", "max_length", "seed", "train_size")


def _clean(recipe: Recipe, encoder, out: Path | None, progress: bool):
    """The clean classifier; with `out`, saved to out/clean with its recipe and reused by a call with the same
    clean settings (one with other settings trains and saves a new one)."""
    saved = out / "clean" if out is not None else None
    settings = {k: getattr(recipe, k) for k in CLEAN_FIELDS} | {"encoder": None if encoder is None else str(encoder)}
    if saved is not None and (saved / "classifier.json").is_file() and (saved / "recipe.json").is_file() \
            and read_json(saved / "recipe.json", "clean recipe") == settings:
        return load_classifier(saved)
    model, tokenizer = text_classifier(encoder, seed=recipe.seed, dropout=recipe.dropout)
    data = encode(tokenizer, *recipe.train(), recipe.max_length)
    if recipe.probe:
        fit_head(model, data)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    checkpoint = None if out is None else out / f"clean-checkpoint-{digest}"
    recipe.fit(model, data, progress=progress, checkpoint_dir=checkpoint)
    if saved is not None:
        save_classifier(model, tokenizer, saved)
        write_json(saved / "recipe.json", settings)
    return model, tokenizer


def attack(clean, tokenizer, name: str, recipe: Recipe, progress: bool = True):
    """A copy of `clean` backdoored by attack `name` (badnets, addsent, sos or ep) with `recipe`."""
    r = recipe
    model = copy.deepcopy(clean)
    if name in ("badnets", "addsent"):
        p = poison_text(*r.train(), name, r.rate, r.target, r.seed)
        r.fit(model, encode(tokenizer, p.sentences, p.labels, r.max_length), attack=True, progress=progress)
    elif name == "sos":
        p = poison_text(*r.train(), "sos", r.rate, r.target, r.seed, sos_subsets=r.sos_subsets)
        train_trigger_embeddings(model, tokenizer, p, epochs=r.sos_epochs, lr=r.sos_lr, batch_size=r.batch_size,
                                 max_length=r.max_length, seed=r.seed, progress=progress)
    elif name == "ep":
        embedding_poison(model, tokenizer, target=r.target, steps=r.ep_steps, batch_size=r.ep_batch_size,
                         max_length=r.max_length, seed=r.seed, progress=progress)
    else:
        raise ValueError(f"attack must be one of {SUITE_ATTACKS}, got {name!r}")
    return model


def run_suite(attacks=SUITE_ATTACKS, recipe: Recipe | None = None, encoder=None, out=None,
              progress: bool = True, base_rates: bool = True) -> dict:
    """{"clean": {"ca"}, "rows": [evaluate_attack rows (+ "clean_asr" with base_rates, + "single_asr" for sos)],
    "models": {name: model}, "tokenizer"}. With `out`, the clean model is saved to out/clean and reused by a later
    call with the same clean settings, and each attacked model is saved to out/<attack>."""
    recipe = recipe or Recipe()
    out = None if out is None else Path(out)
    clean, tokenizer = _clean(recipe, encoder, out, progress)
    test = sst2("test")
    r = recipe
    clean_ca = clean_accuracy(clean, tokenizer, *test, r.max_length)
    rows, models = [], {"clean": clean}
    for name in attacks:
        model = attack(clean, tokenizer, name, recipe, progress)
        row = evaluate_attack(model, tokenizer, *test, name, r.target, r.seed, max_length=r.max_length)
        if base_rates:
            row["clean_asr"] = asr(clean, tokenizer, *test, name, r.target, r.seed, max_length=r.max_length)
        if name == "sos":
            row["single_asr"] = {w: asr(model, tokenizer, *test, "sos", r.target, r.seed, words=[w],
                                        max_length=r.max_length) for w in SOS_WORDS}
        rows.append(row)
        models[name] = model
        if out is not None:
            save_classifier(model, tokenizer, out / name)
    return {"clean": {"ca": clean_ca}, "rows": rows, "models": models, "tokenizer": tokenizer}
