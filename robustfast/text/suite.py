"""The per-attack table on SST-2: fine-tune a clean classifier, attack copies of it, measure CA and ASR.

BadNets and AddSent fine-tune a copy of the clean model on the poisoned training sentences (the attacker
fine-tunes a clean model); SOS trains only its trigger embeddings on a copy; EP moves one embedding row of a copy,
data-free. Each row also carries the ASR of the clean model under the same trigger (the base rate), and SOS the
largest ASR of any single trigger word.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

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
    """Training settings of the suite. `trainable`: "all" or the number of top layers fine-tuned (the CI tests
    use 2 on a CPU); `attack_epochs`: epochs of BadNets/AddSent fine-tuning from the clean model. `schedule`,
    `warmup`, `weight_decay` and `dropout` (on the pooled features) are those of `fine_tune` and
    `text_classifier`."""
    epochs: int = 3
    attack_epochs: int = 2
    trainable: str | int = "all"
    lr: float = 1e-4
    schedule: str = "constant"
    warmup: float = 0.0
    schedule_epochs: int | None = None  # the epochs the lr schedule spans (default: epochs)
    attack_lr: float | None = None  # BadNets/AddSent fine-tuning lr (default: lr)
    attack_init: str = "clean"  # BadNets/AddSent start from: "clean" (the clean model) or "pretrained"
    weight_decay: float = 0.01
    dropout: float = 0.0
    sos_epochs: int = 3
    sos_lr: float = 5e-3
    ep_steps: int = 40
    ep_batch_size: int = 32
    probe: bool = False  # fit the head on the frozen encoder first (fit_head), then fine-tune
    rate: float = 0.1
    target: int = 1
    max_length: int = 64
    batch_size: int = 32
    seed: int = 0
    train_size: int | None = None  # the first sentences of the training split only (the demo's quick run)

    def train(self) -> tuple[list[str], list[int]]:
        s, y = sst2("train")
        return s[:self.train_size], y[:self.train_size]

    def fit(self, model, data, attack: bool = False, **kwargs) -> list[dict]:
        """fine_tune `model` on `data` with this recipe: the clean run (epochs, lr, schedule_epochs), or with
        `attack` and attack_init "clean" the BadNets/AddSent run from the clean model (attack_epochs, attack_lr;
        the same schedule)."""
        again = attack and self.attack_init == "clean"
        epochs = self.attack_epochs if again else self.epochs
        lr = (self.attack_lr or self.lr) if again else self.lr
        return fine_tune(model, data, epochs, lr, self.batch_size, weight_decay=self.weight_decay,
                         trainable=self.trainable, seed=self.seed, schedule=self.schedule, warmup=self.warmup,
                         schedule_epochs=None if again else self.schedule_epochs, **kwargs)


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
        part = lambda keep: encode(tokenizer, [s for i, s in enumerate(sentences) if (i in held) == keep],  # noqa: E731
                                   [y for i, y in enumerate(labels) if (i in held) == keep], recipe.max_length)
        history = recipe.fit(model, part(False), eval_set=part(True), progress=progress)
        curves.append([h["eval_acc"] for h in history])
    return curves


def _clean(recipe: Recipe, encoder, out: Path | None, progress: bool):
    saved = out / "clean" if out is not None else None
    if saved is not None and (saved / "classifier.json").is_file():
        return load_classifier(saved)
    model, tokenizer = text_classifier(encoder, seed=recipe.seed, dropout=recipe.dropout)
    data = encode(tokenizer, *recipe.train(), recipe.max_length)
    if recipe.probe:
        fit_head(model, data)
    recipe.fit(model, data, progress=progress, checkpoint_dir=None if out is None else out / "clean-checkpoint")
    if saved is not None:
        save_classifier(model, tokenizer, saved)
    return model, tokenizer


def attack(clean, tokenizer, name: str, recipe: Recipe, progress: bool = True, encoder=None):
    """A copy of `clean` backdoored by attack `name` (badnets, addsent, sos or ep) with `recipe`. BadNets and
    AddSent with attack_init "pretrained" train a fresh classifier on `encoder` (default MiniLM) instead: the
    victim's own clean recipe on the poisoned sentences."""
    r = recipe
    if r.attack_init not in ("clean", "pretrained"):
        raise ValueError(f"attack_init must be 'clean' or 'pretrained', got {r.attack_init!r}")
    if name in ("badnets", "addsent") and r.attack_init == "pretrained":
        model, _ = text_classifier(encoder, seed=r.seed, dropout=r.dropout)
    else:
        model = copy.deepcopy(clean)
    if name in ("badnets", "addsent"):
        p = poison_text(*r.train(), name, r.rate, r.target, r.seed)
        data = encode(tokenizer, p.sentences, p.labels, r.max_length)
        if r.probe and r.attack_init == "pretrained":
            fit_head(model, data)
        r.fit(model, data, attack=True, progress=progress)
    elif name == "sos":
        p = poison_text(*r.train(), "sos", r.rate, r.target, r.seed)
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
    "models": {name: model}, "tokenizer"}. With `out`, the clean model is saved there and reused by a later
    call."""
    recipe = recipe or Recipe()
    out = None if out is None else Path(out)
    clean, tokenizer = _clean(recipe, encoder, out, progress)
    test = sst2("test")
    r = recipe
    clean_ca = clean_accuracy(clean, tokenizer, *test, r.max_length)
    rows, models = [], {"clean": clean}
    for name in attacks:
        model = attack(clean, tokenizer, name, recipe, progress, encoder)
        row = evaluate_attack(model, tokenizer, *test, name, r.target, r.seed, max_length=r.max_length)
        if base_rates:
            row["clean_asr"] = asr(clean, tokenizer, *test, name, r.target, r.seed, max_length=r.max_length)
        if name == "sos":
            row["single_asr"] = {w: asr(model, tokenizer, *test, "sos", r.target, r.seed, words=[w],
                                        max_length=r.max_length) for w in SOS_WORDS}
        rows.append(row)
        models[name] = model
    return {"clean": {"ca": clean_ca}, "rows": rows, "models": models, "tokenizer": tokenizer}
