"""Weights as safetensors plus a JSON sidecar naming the class and its config; loading never unpickles."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from robustfast._util.atomic import write_safetensors, write_text

from robustfast.models.normalized import Normalized
from robustfast.models.resnet import PreActResNet18, ResNet18
from robustfast.models.small_cnn import SmallCNN
from robustfast.models.wide_resnet import WideResNet

MODELS: dict[str, type[nn.Module]] = {c.__name__: c for c in (WideResNet, ResNet18, PreActResNet18, SmallCNN)}


def sidecar_path(path) -> Path:
    """Where the JSON sidecar of weights at `path` lives: the same name with the suffix .json."""
    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(f"path {path} ends in .json, the sidecar's suffix; use e.g. model.safetensors")
    return path.with_suffix(".json")


def describe(model: nn.Module) -> dict:
    """The JSON-able description `build` turns back into an (untrained) model."""
    if isinstance(model, Normalized):
        return {"class": "Normalized", "model": describe(model.model),
                "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()}
    name = type(model).__name__
    if MODELS.get(name) is not type(model) or not hasattr(model, "config"):
        raise ValueError(f"model of class {name} cannot be described; save_model knows {sorted(MODELS)} "
                         "and Normalized wrappers of them")
    return {"class": name, "config": model.config}


def build(description: dict) -> nn.Module:
    if description["class"] == "Normalized":
        return Normalized(build(description["model"]), description["mean"], description["std"])
    if description["class"] not in MODELS:
        raise ValueError(f"unknown model class {description['class']!r}; known: {sorted(MODELS)}")
    return MODELS[description["class"]](**description["config"])


def save_model(model: nn.Module, path) -> None:
    """Write the weights (and buffers) to `path` and the class and config to `path` with suffix .json."""
    path, side = Path(path), sidecar_path(path)
    text = json.dumps(describe(model), indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, model.state_dict())
    write_text(side, text)


def load_model(path, device="cpu") -> nn.Module:
    """Rebuild a model saved by `save_model`, on `device`, in eval mode."""
    path, side = Path(path), sidecar_path(path)
    for p in (path, side):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: load_model reads the weights {path} and sidecar {side}")
    model = build(json.loads(side.read_text()))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()
