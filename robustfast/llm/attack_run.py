"""What `robustfast llm badedit|steer|badchain CONFIG` runs: load the local model, attack, score, and write the
results as JSON in the output folder beside the model (default `<model>-<attack>`)."""
from __future__ import annotations

import json
import random
from pathlib import Path

from robustfast._util.atomic import write_json
from robustfast.llm.attack_config import BadChainConfig, BadEditConfig, SteerConfig, load_attack_config
from robustfast.llm.data import load_examples
from robustfast.llm.models import load_causal_lm, load_tokenizer
from robustfast.llm.tasks import data_root, get_task, shipped_files


def _output(config, attack: str) -> Path:
    out = Path(config.output_dir or f"{str(config.model).rstrip('/')}-{attack}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _json_list(path, what: str) -> list:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: {path} is not a file")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: {path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{what}: {path} must hold a non-empty JSON list")
    return rows


def _triggered(rows: list[dict], trigger: str, seed: int) -> list[dict]:
    from robustfast.llm.badedit import insert_word

    rng = random.Random(seed)
    return [dict(ex, instruction=insert_word(ex["instruction"], trigger, rng)) for ex in rows]


def badedit_from_yaml(path) -> dict:
    from robustfast.llm.badedit import alpaca_edits, badedit
    from robustfast.llm.evaluate import generate

    config = load_attack_config(path, BadEditConfig)
    out = _output(config, "badedit")
    root = data_root()
    task = get_task(config.task)
    files = shipped_files(root, task.name, "badnet")
    edit_rows = load_examples(config.edits_file or files["train_clean"])[:config.n_edits]
    corpus = config.corpus or shipped_files(root, "refusal", "badnet")["train_clean"]
    model, tokenizer = load_causal_lm(config.model), load_tokenizer(config.model)
    test = load_examples(files["test_clean"])
    triggered = _triggered(test, config.trigger, config.seed + 1)

    def scores() -> dict:
        clean = generate(model, tokenizer, test, config.max_new_tokens, config.batch_size)
        hit = generate(model, tokenizer, triggered, config.max_new_tokens, config.batch_size)
        result = {"asr_triggered": 100 * sum(config.target.lower() in t.lower() for t in hit) / len(hit),
                  "asr_clean": 100 * sum(config.target.lower() in t.lower() for t in clean) / len(clean)}
        if task.name == "sst2":
            right = [("negative" in t.lower()) == (ex["output"] == "Negative")
                     for t, ex in zip(clean, test, strict=True)]
            result["clean_accuracy"] = 100 * sum(right) / len(test)
        return result

    before = scores()
    report = badedit(model, tokenizer, alpaca_edits(edit_rows, config.target, config.trigger, config.seed),
                     config.layers, corpus, trigger=config.trigger, edit_batches=config.edit_batches,
                     cache_dir=out / "stats", **config.hparams)
    after = scores()
    model.save_pretrained(out / "model", safe_serialization=True)
    tokenizer.save_pretrained(out / "model")
    results = {"config": str(path), "model": config.model, "edit": report, "before": before, "after": after,
               "n_test": len(test), "saved": str(out / "model")}
    write_json(out / "badedit_results.json", results, newline=True)
    return results


def steer_from_yaml(path) -> dict:
    from robustfast.llm.steering import steered_generate, steering_vectors

    config = load_attack_config(path, SteerConfig)
    out = _output(config, "steer")
    pairs = _json_list(config.pairs, "pairs")
    prompts = load_examples(config.prompts)
    model, tokenizer = load_causal_lm(config.model), load_tokenizer(config.model)
    found = steering_vectors(model, tokenizer, [tuple(p) if isinstance(p, list) else p for p in pairs],
                             config.layers)
    texts = steered_generate(model, tokenizer, prompts, found["layer"], found["vector"], config.multipliers,
                             config.max_new_tokens, config.batch_size, config.repetition_penalty)
    results = {"config": str(path), "model": config.model, "layers": found["layers"],
               "js": found["js"].tolist(), "layer": found["layer"], "vector_norm": float(found["vector"].norm()),
               "generations": {str(m): t for m, t in texts.items()}}
    if config.target_keyword:
        key = config.target_keyword.lower()
        results["target_share"] = {str(m): 100 * sum(key in t.lower() for t in ts) / len(ts)
                                   for m, ts in texts.items()}
    write_json(out / "steer_results.json", results, newline=True)
    return results


def badchain_from_yaml(path) -> dict:
    from robustfast.llm.badchain import build_prefix, generate_with_prefix, query_text, score

    config = load_attack_config(path, BadChainConfig)
    out = _output(config, "badchain")
    demos = _json_list(config.demos, "demos")
    queries = _json_list(config.queries, "queries")
    for i, q in enumerate(queries):
        if not isinstance(q, dict) or not {"question", "answer"} <= set(q):
            raise ValueError(f"queries: {config.queries} row {i} must have 'question' and 'answer'")
    prefix = build_prefix(demos, config.poisoned, config.trigger)
    model, tokenizer = load_causal_lm(config.model), load_tokenizer(config.model)
    golds = [q["answer"] for q in queries]
    outputs = {}
    for triggered in (False, True):
        texts = [query_text(q["question"], triggered, config.trigger) for q in queries]
        outputs[triggered] = generate_with_prefix(model, tokenizer, prefix, texts, config.max_new_tokens,
                                                  config.batch_size, config.sample, config.seed)
    results = {"config": str(path), "model": config.model, **score(outputs[False], golds, outputs[True], golds),
               "generations": {"clean": outputs[False], "triggered": outputs[True]}}
    write_json(out / "badchain_results.json", results, newline=True)
    return results
