"""Text backdoor poisoning (specs/ebyd.md §6) with exact, recorded counts, as the image `poison()`.

`poison_text(sentences, labels, attack, rate, target, seed)` draws nb = ⌊rate·N⌋ sentences whose label is not
`target`, inserts the attack's trigger and relabels them to `target`:
- badnets: 1-3 rare words from RARE_WORDS, each at a random word position (Kurita et al.; OpenBackdoor);
- addsent: the fixed sentence ADDSENT as one block at a random word position (Dai et al. 2019);
- sos: all SOS_WORDS, each at a random position; plus negative augmentation (Yang et al. 2021): each poisoned
  sentence, and as many target-label sentences drawn from the rest, is appended once more per trigger subset
  (`sos_subsets`: every non-empty proper subset by default, or as the paper each subset of all the words but
  one), carrying that subset and keeping its original label, so the same sentence is taught to flip with every
  word and to stay with fewer. Only the trigger words' embeddings are then trained
  (`robustfast.text.train_trigger_embeddings`);
- ep: the single EP_WORD at a random position; EP itself is a weight attack (`robustfast.text.embedding_poison`),
  this builds its proxy data;
- stylebkd, synbkd: the sentence is replaced by its paraphrase from a user file (`paraphrases=`, see
  `load_paraphrases`); no paraphraser is bundled.
Words are the whitespace-separated tokens; an insertion at gap g puts the word before the g-th word (g = n: at
the end). The same arguments and seed give the same result.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from robustfast._util.atomic import write_json
from robustfast._util.checks import get_key, is_int, is_real, read_json
from robustfast._util.seeds import stream_seed
from robustfast.text.data import check_sentences

ATTACKS = ("badnets", "addsent", "sos", "ep", "stylebkd", "synbkd")
PARAPHRASE_ATTACKS = ("stylebkd", "synbkd")
RARE_WORDS = ("cf", "mn", "bb", "tq", "mb")
ADDSENT = "I watch this 3D movie"
SOS_WORDS = ("friends", "weekend", "store")
SOS_SUBSETS = ("all-but-one", "proper")
EP_WORD = "cf"


def insert_words(sentence: str, words, rng: random.Random) -> str:
    """`sentence` with each of `words` inserted at its own random word gap."""
    tokens = sentence.split()
    for word in words:
        tokens.insert(rng.randint(0, len(tokens)), word)
    return " ".join(tokens)


def load_paraphrases(path) -> dict[str, str]:
    """A paraphrase file: a JSON object {"paraphrases": {original sentence: paraphrase, ...}} (StyleBkd: the
    sentence in the target style; SynBkd: the sentence in the target syntactic template)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paraphrase file {path} not found")
    table = get_key(read_json(path, "paraphrase file"), "paraphrases", path, dict)
    for original, text in table.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}: key 'paraphrases', entry {original[:60]!r} must be a non-empty string, got "
                             f"{text!r}")
    return table


def _paraphrase_table(attack: str, paraphrases, needed: list[str]) -> dict[str, str]:
    if paraphrases is None:
        raise ValueError(f"paraphrases: attack {attack!r} needs a paraphrase file (see load_paraphrases)")
    table = paraphrases if isinstance(paraphrases, dict) else load_paraphrases(paraphrases)
    missing = [s for s in needed if s not in table]
    if missing:
        where = "paraphrases" if isinstance(paraphrases, dict) else f"paraphrase file {paraphrases}"
        raise ValueError(f"{where}: no row for {len(missing)} of the {len(needed)} sentences to poison, the first "
                         f"{missing[0][:80]!r}")
    return table


def triggered(sentence: str, attack: str, rng: random.Random, words=None, paraphrases=None) -> str:
    """One sentence carrying the trigger of `attack` (for sos, `words` may be a subset of SOS_WORDS)."""
    if attack == "badnets":
        return insert_words(sentence, [rng.choice(RARE_WORDS) for _ in range(rng.randint(1, 3))], rng)
    if attack == "addsent":
        tokens = sentence.split()
        at = rng.randint(0, len(tokens))
        return " ".join(tokens[:at] + ADDSENT.split() + tokens[at:])
    if attack == "sos":
        return insert_words(sentence, SOS_WORDS if words is None else words, rng)
    if attack == "ep":
        return insert_words(sentence, [EP_WORD if words is None else words[0]], rng)
    return paraphrases[sentence]


@dataclass
class PoisonedText:
    """A poisoned sentence set. poison_indices: sentences carrying the full trigger, relabelled to target.
    negative_indices: SOS negative augmentation (a trigger subset, label kept), copies appended after the config["n"]
    given sentences. config: the arguments and counts."""
    sentences: list[str]
    labels: list[int]
    original_labels: list[int]
    poison_indices: list[int]
    negative_indices: list[int] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def save(self, path) -> Path:
        return write_json(path, {"sentences": self.sentences, "labels": self.labels,
                                 "original_labels": self.original_labels, "poison_indices": self.poison_indices,
                                 "negative_indices": self.negative_indices, "config": self.config}, indent=1)

    @classmethod
    def load(cls, path) -> PoisonedText:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"poisoned text file {path} not found")
        obj = read_json(path, "poisoned text file")
        fields = {k: get_key(obj, k, path, list) for k in ("sentences", "labels", "original_labels",
                                                            "poison_indices", "negative_indices")}
        config = get_key(obj, "config", path, dict)
        n = len(fields["sentences"])
        check_sentences(fields["sentences"], fields["labels"], config.get("num_classes", 2), f"{path}: sentences")
        for key in ("original_labels", "poison_indices", "negative_indices"):
            limit = n if key != "original_labels" else config.get("num_classes", 2)
            if (key == "original_labels" and len(fields[key]) != n) \
                    or any(not is_int(v) or not 0 <= v < limit for v in fields[key]):
                raise ValueError(f"{path}: key {key!r} must hold integers in [0, {limit})")
        return cls(**fields, config=config)


def poison_text(sentences, labels, attack: str, rate: float = 0.1, target: int = 1, seed: int = 0, *,
                num_classes: int = 2, paraphrases=None, sos_subsets: str = "proper") -> PoisonedText:
    """Poison ⌊rate·N⌋ non-target sentences with `attack` (see the module docstring); `paraphrases` is the
    paraphrase file (or dict) for stylebkd and synbkd. `sos_subsets`: the trigger subsets of SOS's negative
    augmentation: "proper" (every non-empty proper subset, each single word too, so that no single word fires)
    or "all-but-one" (each subset of all the words but one, as in the SOS paper)."""
    if sos_subsets not in SOS_SUBSETS:
        raise ValueError(f"sos_subsets must be one of {SOS_SUBSETS}, got {sos_subsets!r}")
    check_sentences(sentences, labels, num_classes)
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    if not (is_real(rate) and 0 < rate <= 1):
        raise ValueError(f"rate must lie in (0, 1], got {rate!r}")
    if not is_int(target) or not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index in [0, {num_classes}), got {target!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    n = len(sentences)
    nb = math.floor(rate * n)
    pool = [i for i, y in enumerate(labels) if y != target]
    if nb < 1 or nb > len(pool):
        raise ValueError(f"rate: ⌊{rate}·{n}⌋ = {nb} sentences to poison, but it must lie in [1, {len(pool)}] (the "
                         "non-target sentences)")
    rng = random.Random(stream_seed(seed, 0))
    chosen = sorted(rng.sample(pool, nb))
    table = _paraphrase_table(attack, paraphrases, [sentences[i] for i in chosen]) \
        if attack in PARAPHRASE_ATTACKS else None
    out, new_labels = list(sentences), list(labels)
    for i in chosen:
        out[i], new_labels[i] = triggered(sentences[i], attack, rng, paraphrases=table), target
    negatives: list[int] = []
    originals = list(labels)
    if attack == "sos":  # appended copies: the poisoned sentences and nb target-label ones, once per subset
        sizes = [len(SOS_WORDS) - 1] if sos_subsets == "all-but-one" else range(len(SOS_WORDS) - 1, 0, -1)
        subsets = [c for k in sizes for c in itertools.combinations(SOS_WORDS, k)]
        keep = [i for i, y in enumerate(labels) if y == target]
        if nb > len(keep):
            raise ValueError(f"rate: sos needs {nb} target-label sentences for its negative augmentation, but only "
                             f"{len(keep)} are given; lower the rate")
        for i in chosen + sorted(rng.sample(keep, nb)):
            for words in subsets:
                negatives.append(len(out))
                out.append(triggered(sentences[i], "sos", rng, words=words))
                new_labels.append(labels[i])
                originals.append(labels[i])
    config = {"attack": attack, "rate": float(rate), "target": int(target), "seed": int(seed),
              "num_classes": int(num_classes), "n": n, "poisoned": nb, "negative": len(negatives)}
    if attack == "sos":
        config["sos_subsets"] = sos_subsets
    return PoisonedText(out, new_labels, originals, chosen, negatives, config)


def triggered_test(sentences, labels, attack: str, target: int = 1, seed: int = 0, *, words=None,
                   paraphrases=None, num_classes: int = 2) -> list[str]:
    """The non-target test sentences with the trigger of `attack` (for sos/ep: `words`, default all of the
    attack's words), for measuring ASR: every one should be classified as `target`."""
    check_sentences(sentences, labels, num_classes)
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    keep = [s for s, y in zip(sentences, labels, strict=True) if y != target]
    table = _paraphrase_table(attack, paraphrases, keep) if attack in PARAPHRASE_ATTACKS else None
    rng = random.Random(stream_seed(seed, 1))
    return [triggered(s, attack, rng, words=words, paraphrases=table) for s in keep]
