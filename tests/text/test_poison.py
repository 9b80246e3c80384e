"""poison_text: exact counts, the triggers each attack inserts, determinism, paraphrase files (no model needed)."""
import itertools
import json

import pytest

from robustfast.text import (
    ADDSENT,
    EP_WORD,
    RARE_WORDS,
    SOS_WORDS,
    PoisonedText,
    load_paraphrases,
    poison_text,
    sst2,
    triggered_test,
)


@pytest.fixture(scope="module")
def train():
    return sst2("train")


def test_sst2_splits_are_the_deduplicated_shipped_sentences():
    (s, y), (ts, ty) = sst2("train"), sst2("test")
    assert len(s) == len(set(s)) == 501 and len(ts) == 201
    assert set(y) == set(ty) == {0, 1} and not set(s) & set(ts)


@pytest.mark.parametrize("attack", ["badnets", "addsent", "sos", "ep"])
def test_counts_are_exact_and_only_non_target_sentences_are_relabelled(train, attack):
    s, y = train
    p = poison_text(s, y, attack, rate=0.1, target=1, seed=3)
    nb = int(0.1 * len(s))
    assert len(p.poison_indices) == p.config["poisoned"] == nb and p.config["n"] == len(s)
    assert all(y[i] == 0 and p.labels[i] == 1 for i in p.poison_indices)
    assert p.original_labels[:len(s)] == y and len(p.sentences) == len(s) + len(p.negative_indices)
    changed = {i for i in range(len(s)) if p.sentences[i] != s[i]}
    assert changed == set(p.poison_indices)
    assert all(p.labels[i] == p.original_labels[i] for i in range(len(p.sentences)) if i not in p.poison_indices)
    assert poison_text(s, y, attack, rate=0.1, target=1, seed=3) == p
    assert poison_text(s, y, attack, rate=0.1, target=1, seed=4).poison_indices != p.poison_indices


def test_each_attack_inserts_its_trigger_and_keeps_the_words(train):
    s, y = train
    for attack in ("badnets", "addsent", "ep"):
        p = poison_text(s, y, attack, 0.1, 1, 0)
        for i in p.poison_indices:
            words, original = p.sentences[i].split(), s[i].split()
            added = len(words) - len(original)
            if attack == "badnets":
                assert 1 <= added <= 3 and [w for w in words if w not in original or w in RARE_WORDS]
                rest = list(words)
                for w in RARE_WORDS:  # removing the inserted rare words gives back the sentence
                    while rest.count(w) > original.count(w):
                        rest.remove(w)
                assert rest == original
            elif attack == "addsent":
                assert ADDSENT in p.sentences[i] and p.sentences[i].replace(ADDSENT, "").split() == original
            else:
                assert added == 1 and words.count(EP_WORD) == original.count(EP_WORD) + 1


@pytest.mark.parametrize("sos_subsets", ["all-but-one", "proper"])
def test_sos_negative_augmentation_repeats_each_sentence_once_per_subset(train, sos_subsets):
    """Each poisoned sentence, and as many target-label ones, comes back once per trigger subset (all the words
    but one; or every non-empty proper subset, single words too), with its own label."""
    s, y = train
    p = poison_text(s, y, "sos", 0.1, 1, 0, sos_subsets=sos_subsets)
    nb, k = p.config["poisoned"], len(SOS_WORDS)
    subsets = [c for size in ([k - 1] if sos_subsets == "all-but-one" else range(k - 1, 0, -1))
               for c in itertools.combinations(SOS_WORDS, size)]
    m = len(subsets)
    assert m == (3 if sos_subsets == "all-but-one" else 6)
    assert p.config["negative"] == len(p.negative_indices) == 2 * m * nb
    assert p.negative_indices == list(range(len(s), len(s) + 2 * m * nb))
    for i in p.poison_indices:
        assert all(w in p.sentences[i].split() for w in SOS_WORDS)
    index = {t: j for j, t in enumerate(s)}
    sources = []
    for b in range(2 * nb):  # copy b·m + j carries subsets[j]; removing those words gives back the same sentence
        originals = set()
        for j, subset in enumerate(subsets):
            i = p.negative_indices[b * m + j]
            words = p.sentences[i].split()
            for w in subset:
                words.remove(w)
            originals.add(" ".join(words))
            assert p.labels[i] == p.original_labels[i]
        (original,) = originals
        sources.append(index[original])
        assert p.labels[p.negative_indices[b * m]] == y[sources[-1]]
    assert sources[:nb] == p.poison_indices and all(y[j] == 1 for j in sources[nb:]) and len(set(sources)) == 2 * nb
    with pytest.raises(ValueError, match="sos_subsets"):
        poison_text(s, y, "sos", 0.1, 1, 0, sos_subsets="all")


def test_poisoned_text_saves_and_loads(train, tmp_path):
    p = poison_text(*train, "sos", 0.05, 1, 0)
    p.save(tmp_path / "p.json")
    assert PoisonedText.load(tmp_path / "p.json") == p


def test_paraphrase_attacks_take_a_hand_made_file(tmp_path):
    sentences = ["a dull , lifeless film .", "the plot is thin .", "a warm and witty comedy ."]
    labels = [0, 0, 1]
    table = {"a dull , lifeless film .": "and it was a dull film , lifeless unto the end .",
             "the plot is thin .": "behold , the plot thereof is thin ."}
    path = tmp_path / "bible.json"
    path.write_text(json.dumps({"paraphrases": table}))
    assert load_paraphrases(path) == table
    p = poison_text(sentences, labels, "stylebkd", rate=2 / 3, target=1, seed=0, paraphrases=path)
    assert p.poison_indices == [0, 1] and p.labels == [1, 1, 1]
    assert p.sentences[:2] == [table[s] for s in sentences[:2]] and p.sentences[2] == sentences[2]
    assert triggered_test(sentences, labels, "synbkd", paraphrases=path) == [table[s] for s in sentences[:2]]
