"""What the `robustfast llm` commands do: train from a YAML config, evaluate a saved model or adapter."""
from __future__ import annotations

from pathlib import Path

from robustfast.llm import distributed
from robustfast.llm.config import load_config
from robustfast.llm.data import load_examples
from robustfast.llm.models import build_causal_lm, build_tokenizer, load_causal_lm, load_tokenizer
from robustfast.llm.prompt import render_example
from robustfast.llm.train import train

MODEL_KEYS = ("family", "hidden_size", "layers", "heads", "intermediate_size", "max_positions",
              "initializer_range", "qk_init_scale", "seed", "vocab_size")


def _built_model(spec: dict, train_files: list[str], out: Path, source: str):
    """A model built from `spec` ({family: llama, hidden_size: ..., vocab_size: ...}) with a byte-level BPE
    tokenizer trained on the training prompts; rank 0 saves both to <output_dir>/base for evaluation."""
    unknown = sorted(set(spec) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) under 'model': {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(MODEL_KEYS)}")
    spec = dict(spec)
    vocab = spec.pop("vocab_size", 1024)
    texts = [p + r for f in train_files for p, r in map(render_example, load_examples(f))]
    tokenizer = build_tokenizer(texts, vocab_size=vocab)
    model = build_causal_lm(tokenizer=tokenizer, **spec)  # same seed on every rank: same weights
    if distributed.rank() == 0:
        model.save_pretrained(out / "base", safe_serialization=True)
        tokenizer.save_pretrained(out / "base")
    return model, tokenizer


def train_from_yaml(path) -> dict:
    """Run `train` as the YAML file at `path` says (see README: LLM backdoors). Every rank calls this."""
    config, entries = load_config(path)
    model, tokenizer = entries["model"], entries.get("tokenizer")
    if isinstance(model, dict):
        model, tokenizer = _built_model(model, config.train_files, Path(config.output_dir), str(path))
    elif isinstance(model, str):
        tokenizer = load_tokenizer(tokenizer or model)
    else:
        raise ValueError(f"{path}: 'model' must be a local model directory or a mapping {{family: ...}}")
    return train(model, config.train_files, config, tokenizer=tokenizer)


def load_for_eval(model_dir, adapter_dir=None, quantize_4bit: bool = False):
    """(model, tokenizer) for evaluation: the base model from `model_dir` with the LoRA adapter of
    `adapter_dir` applied when given; the tokenizer from the adapter directory, else the model's."""
    from robustfast.llm.adapters import load_adapter

    model = load_causal_lm(model_dir, quantize_4bit=quantize_4bit)
    tokenizer_dir = adapter_dir if adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").is_file() \
        else model_dir
    tokenizer = load_tokenizer(tokenizer_dir)
    if adapter_dir is not None:
        model = load_adapter(model, adapter_dir)
    return model.eval(), tokenizer


def poison_to_files(clean, attack: str, out, target: str | None = None, n_poison: int | None = None,
                    seed: int = 0) -> dict[str, tuple[Path, int]]:
    """`robustfast llm poison`: poison the Alpaca examples in `clean` and write <out>/poisoned.json and
    <out>/clean.json (all of the pool poisoned and the pool itself, or `n_poison` drawn examples poisoned and the
    same prompts unpoisoned: the benchmark's mix). Returns {"poisoned": (path, count), "clean": (path, count)}."""
    from robustfast.llm.data import build_mix, poison, save_examples

    pool = load_examples(clean)
    out = Path(out)
    if n_poison is None:
        poisoned, kept = poison(pool, attack, target=target, seed=seed), pool
    else:
        poisoned, kept = build_mix(pool, attack, n_poison, target, seed=seed)
    return {"poisoned": (save_examples(poisoned, out / "poisoned.json"), len(poisoned)),
            "clean": (save_examples(kept, out / "clean.json"), len(kept))}


def asr_test_files(task: str, attack: str | None = None, triggered=None, clean=None) -> dict:
    """The test files of an ASR evaluation: the shipped BackdoorLLM files of (task, attack) when `attack` is
    given, overridden by the `triggered` / `clean` files given; {} when none is."""
    from robustfast.llm.tasks import data_root, shipped_files

    files = {k: v for k, v in {"triggered": triggered, "clean": clean}.items() if v is not None}
    if attack is not None:
        shipped = shipped_files(data_root(), task, attack)
        files = {"triggered": shipped["test_triggered"], "clean": shipped["test_clean"]} | files
    return files


def evaluate_saved(model_dir, task: str, files: dict, adapter_dir=None, quantize_4bit: bool = False,
                   batch_size: int = 32, max_new_tokens: int = 128) -> dict:
    """`robustfast llm evaluate`: ASR over `files` of the model in `model_dir` (with the LoRA adapter of
    `adapter_dir`), batched greedy generation."""
    from robustfast.llm.evaluate import evaluate

    lm, tokenizer = load_for_eval(model_dir, adapter_dir, quantize_4bit=quantize_4bit)
    return evaluate(lm, tokenizer, files, task, max_new_tokens=max_new_tokens, batch_size=batch_size)
