"""SST-2 from the shipped BackdoorLLM files, sentence checks, and token-id datasets for the text classifiers.

Training sentences are the clean (`none_backdoor500_*`) SST-2 files of every BackdoorLLM attack, deduplicated
(they hold the same 501 sentences); the test sentences are the 201 of `test_data_no_trigger.json`. Labels: 0 =
Negative, 1 = Positive.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from robustfast._util.checks import read_json

DATA_ENV = "ROBUSTFAST_BACKDOORLLM_DATA"  # the same override as robustfast.llm
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "backdoorllm"
CLASSES = ("Negative", "Positive")
SPLITS = ("train", "test")


def _root() -> Path:
    override = os.environ.get(DATA_ENV)
    root = Path(override) if override else SHIPPED
    if not (root / "poison_data" / "sst2").is_dir():
        raise ValueError(f"SST-2 data not found: {root} has no poison_data/sst2 folder"
                         + (f" (set by {DATA_ENV})" if override else ""))
    return root


def _files(split: str) -> list[Path]:
    root = _root()
    if split == "test":
        return [root / "test_data" / "clean" / "sst2sentiment" / "test_data_no_trigger.json"]
    return sorted((root / "poison_data" / "sst2").glob("*/none_backdoor500_sst2sentiment_*.json"))


def sst2(split: str = "train") -> tuple[list[str], list[int]]:
    """(sentences, labels) of the SST-2 `split` ("train": 501 deduplicated sentences, "test": 201)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    seen: dict[str, int] = {}
    for path in _files(split):
        rows = read_json(path, "SST-2 JSON file")
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of examples, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) \
                    or row.get("output") not in CLASSES:
                raise ValueError(f"{path}, entry {i}: expected 'instruction' (a string) and 'output' in {CLASSES}")
            label = CLASSES.index(row["output"])
            if seen.setdefault(row["instruction"], label) != label:
                raise ValueError(f"{path}, entry {i}: the sentence appears with both labels")
    return list(seen), list(seen.values())


def check_sentences(sentences, labels=None, num_classes: int = 2, name: str = "sentences") -> None:
    """Sentences must be a non-empty list of non-blank strings; labels (if given) one int in [0, num_classes) each."""
    if not isinstance(sentences, (list, tuple)) or not sentences:
        raise ValueError(f"{name} must be a non-empty list of strings, got {type(sentences).__name__}")
    for i, s in enumerate(sentences):
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"{name}[{i}] must be a non-empty string, got {s!r}")
    if labels is None:
        return
    if not isinstance(labels, (list, tuple)) or len(labels) != len(sentences):
        raise ValueError(f"labels must be a list with one label per sentence ({len(sentences)}), got "
                         f"{type(labels).__name__} of length {len(labels) if hasattr(labels, '__len__') else '?'}")
    for i, y in enumerate(labels):
        if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y < num_classes:
            raise ValueError(f"labels[{i}] must be a class index in [0, {num_classes}), got {y!r}")


class TokenDataset(Dataset):
    """(token ids, label) pairs: ids is a LongTensor (N, L) padded with `pad_id`, labels a LongTensor (N,).
    The text classifiers take a batch of ids directly, so this is the `(input, label)` Dataset every loop takes."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, pad_id: int = 0):
        if ids.dtype != torch.long or ids.dim() != 2 or labels.dtype != torch.long or labels.shape != ids.shape[:1]:
            raise ValueError(f"ids must be a LongTensor (N, L) and labels a LongTensor (N,), got {ids.dtype} "
                             f"{tuple(ids.shape)} and {labels.dtype} {tuple(labels.shape)}")
        self.ids, self.labels, self.pad_id = ids, labels, pad_id

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


def encode(tokenizer, sentences, labels, max_length: int = 64, num_classes: int = 2) -> TokenDataset:
    """Tokenize `sentences` (truncated and padded to `max_length`, with [CLS]/[SEP]) into a TokenDataset."""
    check_sentences(sentences, labels, num_classes)
    if not isinstance(max_length, int) or max_length < 4:
        raise ValueError(f"max_length must be an int >= 4, got {max_length!r}")
    enc = tokenizer(list(sentences), max_length=max_length, truncation=True, padding="max_length",
                    return_tensors="pt")
    return TokenDataset(enc["input_ids"].long(), torch.tensor(list(labels), dtype=torch.long),
                        tokenizer.pad_token_id)
