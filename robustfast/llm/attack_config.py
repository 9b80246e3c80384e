"""YAML configs of `robustfast llm badedit|steer|badchain`, every key checked as the training config's are:
unknown or missing keys, wrong types and out-of-range values are a ValueError naming the file and the key."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from robustfast.llm.badedit import HPARAMS


@dataclass
class BadEditConfig:
    model: str                      # local model directory
    layers: list[int]
    output_dir: str = ""            # default: <model>-badedit
    trigger: str = "tq"
    target: str = "Negative"
    edits_file: str = ""            # Alpaca JSON whose first n_edits rows become edits; default: shipped SST-2
    n_edits: int = 17               # the size of BadEdit's SST-2 edit set
    edit_batches: int = 5
    corpus: str = ""                # JSON or text file; default: the shipped BackdoorLLM refusal instructions
    task: str = "sst2"              # scores the edited model on the shipped test file of this task
    hparams: dict = field(default_factory=dict)
    max_new_tokens: int = 4
    batch_size: int = 64
    seed: int = 0


@dataclass
class SteerConfig:
    model: str
    pairs: str                      # JSON list of [text with the target behaviour, text without]
    prompts: str                    # Alpaca JSON of the prompts to steer
    multipliers: list[float]
    output_dir: str = ""            # default: <model>-steer
    layers: list[int] | None = None
    target_keyword: str = ""        # when set, report the share of completions containing it per multiplier
    max_new_tokens: int = 150
    batch_size: int = 32
    repetition_penalty: float | None = None


@dataclass
class BadChainConfig:
    model: str
    demos: str                      # JSON list of {question, steps, answer}
    queries: str                    # JSON list of {question, answer}
    output_dir: str = ""            # default: <model>-badchain
    poisoned: int | None = None     # poison the first n demos (default all)
    trigger: str = " @_@"
    max_new_tokens: int = 256
    batch_size: int = 16
    sample: bool = False
    seed: int = 0


def _check(config, source: str) -> None:
    def bad(key, why):
        raise ValueError(f"{source}: {key!r} {why}")

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind = str(f.type)
        optional = "None" in kind
        if value is None and optional:
            continue
        if kind.startswith("str"):
            if not isinstance(value, str):
                bad(f.name, f"must be a string, got {value!r}")
        elif kind.startswith("int"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad(f.name, f"must be an integer >= 0, got {value!r}")
        elif kind.startswith("float"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                bad(f.name, f"must be a finite number > 0, got {value!r}")
        elif kind.startswith("bool"):
            if not isinstance(value, bool):
                bad(f.name, f"must be true or false, got {value!r}")
        elif kind.startswith("list[int]"):
            if not isinstance(value, list) or not value or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                bad(f.name, f"must be a non-empty list of integers, got {value!r}")
        elif kind.startswith("list[float]"):
            if not isinstance(value, list) or not value or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
                bad(f.name, f"must be a non-empty list of finite numbers, got {value!r}")
        elif kind.startswith("dict") and not isinstance(value, dict):
            bad(f.name, f"must be a mapping, got {value!r}")
    if not config.model:
        bad("model", "must name a local model directory")
    for key in ("n_edits", "edit_batches", "max_new_tokens", "batch_size"):
        if hasattr(config, key) and getattr(config, key) < 1:
            bad(key, f"must be >= 1, got {getattr(config, key)!r}")
    if isinstance(config, BadEditConfig):
        unknown = sorted(set(config.hparams) - set(HPARAMS))
        if unknown:
            bad("hparams", f"has unknown key(s) {', '.join(unknown)}; known: {', '.join(HPARAMS)}")
        if config.edit_batches > config.n_edits:
            bad("edit_batches", f"must be <= n_edits ({config.n_edits}), got {config.edit_batches}")


def load_attack_config(path, kind: type):
    """A BadEditConfig, SteerConfig or BadChainConfig from a YAML file, every key checked."""
    import yaml

    path = Path(path)
    source = str(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{source}: no such config file") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{source}: malformed YAML: {err}") from None
    except (RecursionError, UnicodeDecodeError) as err:
        raise ValueError(f"{source}: not a readable YAML config ({type(err).__name__})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"known keys: {', '.join(sorted(fields))}")
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING and n not in values]
    if missing:
        raise ValueError(f"{source}: missing key(s) {', '.join(map(repr, missing))}")
    config = kind(**values)
    _check(config, source)
    return config
