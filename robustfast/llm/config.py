"""Training configuration: `TrainConfig`, read from YAML with every key checked, and the DeepSpeed presets.

Defaults are BackdoorLLM's DPA settings (§3): LoRA r 8 / α 16 / dropout 0 on all linear layers, micro-batch
2 × 4 accumulation steps, lr 2e-4 with cosine decay after 10 % warm-up, 5 epochs, grad clipping 1.0,
cutoff 1024 tokens.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"
DEEPSPEED_PRESETS = ("zero0", "zero2", "zero2_offload", "zero3", "zero3_offload")
ZERO_STAGES = (0, 1, 2, 3)
FINETUNING = ("lora", "qlora", "full")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    output_dir: str
    train_files: list[str] = field(default_factory=list)
    finetuning: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    deepspeed: str | None = None   # a preset name (zero0, zero2, ...) or the path of a DeepSpeed JSON config
    epochs: float = 5.0
    max_steps: int | None = None   # optimizer steps; overrides epochs when set
    micro_batch_size: int = 2
    gradient_accumulation_steps: int = 4
    learning_rate: float = 2e-4
    lr_schedule: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "fp32"        # bf16 autocast, or fp16 with DeepSpeed's dynamic loss scale (GPU, DeepSpeed only)
    cutoff_len: int = 1024
    seed: int = 0
    save_steps: int = 100          # checkpoint every this many optimizer steps (and at the end)
    logging_steps: int = 10

    def __post_init__(self):
        self.validate()

    def validate(self, source: str = "config") -> None:
        def bad(key, why):
            raise ValueError(f"{source}: {key!r} {why}")

        if not isinstance(self.output_dir, str) or not self.output_dir:
            bad("output_dir", "must be a non-empty path")
        if not isinstance(self.train_files, list) or not all(isinstance(p, str) for p in self.train_files):
            bad("train_files", "must be a list of paths")
        if self.finetuning not in FINETUNING:
            bad("finetuning", f"must be one of {', '.join(FINETUNING)}, got {self.finetuning!r}")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "fp16" and self.deepspeed is None:
            bad("precision", "fp16 needs DeepSpeed (its dynamic loss scale); use bf16 or fp32 without it")
        if self.lr_schedule not in SCHEDULES:
            bad("lr_schedule", f"must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        for key in ("lora_r", "lora_alpha", "micro_batch_size", "gradient_accumulation_steps", "cutoff_len",
                    "save_steps", "logging_steps"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(key, f"must be a positive integer, got {value!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool)
                                           or self.max_steps < 1):
            bad("max_steps", f"must be a positive integer or null, got {self.max_steps!r}")
        for key, low, high in (("epochs", 0.0, None), ("learning_rate", 0.0, None), ("warmup_ratio", 0.0, 1.0),
                               ("lora_dropout", 0.0, 1.0), ("weight_decay", 0.0, None), ("max_grad_norm", 0.0, None)):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or (
                    value < low or (high is not None and value > high)):
                where = f"[{low}, {high}]" if high is not None else f">= {low}"
                bad(key, f"must be a finite number {where}, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            bad("seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.deepspeed is not None:
            try:
                deepspeed_config(self.deepspeed)
            except ValueError as err:
                raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"known keys: {', '.join(sorted(names))}")
        if "output_dir" not in values:
            raise ValueError(f"{source}: missing key 'output_dir'")
        config = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            setattr(config, f.name, values.get(f.name, default))
        config.validate(source)
        return config


def deepspeed_config(spec: str) -> dict:
    """The DeepSpeed JSON config named by `spec`: a shipped preset (zero0, zero2, zero2_offload, zero3,
    zero3_offload) or a path. Its `zero_optimization.stage` must be 0..3."""
    if not isinstance(spec, str):
        raise ValueError(f"'deepspeed' must be a preset name or a JSON path, got {spec!r}")
    path = CONFIG_DIR / f"{spec}.json" if spec in DEEPSPEED_PRESETS else Path(spec)
    if not path.is_file():
        raise ValueError(f"'deepspeed': {spec!r} is neither a preset ({', '.join(DEEPSPEED_PRESETS)}) "
                         "nor an existing JSON file")
    try:
        ds = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise ValueError(f"{path}: the JSON is nested too deeply to be a DeepSpeed config") from None
    if not isinstance(ds, dict):
        raise ValueError(f"{path}: expected a JSON object (a DeepSpeed config), got {type(ds).__name__}")
    zero = ds.get("zero_optimization", {})
    if not isinstance(zero, dict):
        raise ValueError(f"{path}: 'zero_optimization' must be an object, got {type(zero).__name__}")
    stage = zero.get("stage", 0)
    if type(stage) is not int or stage not in ZERO_STAGES:  # 2.0 == 2 and True == 1: neither is a stage
        raise ValueError(f"{path}: 'zero_optimization.stage' is {stage!r}; ZeRO stages are 0, 1, 2, 3")
    return ds


def load_config(path) -> tuple[TrainConfig, dict]:
    """(TrainConfig, model entries) from a YAML file. The model entries are `model` (a local model directory, or
    a mapping {family: llama, ...} for a model built from a config) and an optional `tokenizer` directory."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: malformed YAML: {err}") from None
    except (RecursionError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable YAML config ({type(err).__name__})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of keys to values, got {type(values).__name__}")
    rest = {k: values.pop(k) for k in ("model", "tokenizer") if k in values}
    if "model" not in rest:
        raise ValueError(f"{path}: missing key 'model' (a local model directory or {{family: llama, ...}})")
    return TrainConfig.from_dict(values, source=str(path)), rest
