"""Clean accuracy (CA) and attack success rate (ASR) of a text classifier, and the per-attack table."""
from __future__ import annotations

import torch

from robustfast._util.tables import table
from robustfast.text.data import encode
from robustfast.text.poison import triggered_test
from robustfast.text.train import predict


def asr(model, tokenizer, sentences, labels, attack: str, target: int = 1, seed: int = 0, *, words=None,
        paraphrases=None, max_length: int = 64) -> float:
    """Share of the non-target `sentences`, carrying the trigger of `attack`, classified as `target`."""
    poisoned = triggered_test(sentences, labels, attack, target, seed, words=words, paraphrases=paraphrases,
                              num_classes=model.num_classes)
    ids = encode(tokenizer, poisoned, [target] * len(poisoned), max_length, model.num_classes).ids
    return float((predict(model, ids) == target).float().mean())


def clean_accuracy(model, tokenizer, sentences, labels, max_length: int = 64) -> float:
    data = encode(tokenizer, sentences, labels, max_length, model.num_classes)
    return float((predict(model, data.ids) == data.labels).float().mean())


def evaluate_attack(model, tokenizer, sentences, labels, attack: str, target: int = 1, seed: int = 0, *,
                    words=None, paraphrases=None, max_length: int = 64) -> dict:
    """{"attack", "ca", "asr"} of `model` on the test `sentences`."""
    with torch.no_grad():
        return {"attack": attack, "ca": clean_accuracy(model, tokenizer, sentences, labels, max_length),
                "asr": asr(model, tokenizer, sentences, labels, attack, target, seed, words=words,
                           paraphrases=paraphrases, max_length=max_length)}


def attack_table(rows: list[dict], clean_ca: float | None = None) -> str:
    """The rows of `evaluate_attack` as a plain-text table in percent, with the CA loss against `clean_ca` and,
    where a row has it, the clean model's rate on the same triggered sentences (run_suite's "clean_asr")."""
    shown = []
    for r in rows:
        row = {"attack": r["attack"], "CA %": 100 * r["ca"], "ASR %": 100 * r["asr"]}
        if clean_ca is not None:
            row["CA loss (points)"] = 100 * (clean_ca - r["ca"])
        if "clean_asr" in r:
            row["clean model ASR %"] = 100 * r["clean_asr"]
        shown.append(row)
    return table(shown, list(shown[0]))
