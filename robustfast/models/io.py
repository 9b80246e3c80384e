"""Weights as safetensors plus a JSON sidecar naming the class and its config; loading never unpickles."""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from robustfast._util.atomic import write_safetensors, write_text
from robustfast._util.checks import check_finite_tensors, get_key, read_json, read_safetensors

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


def build(description: dict, source="description", depth: int = 0) -> nn.Module:
    """The (untrained) model `description` names; a ValueError naming `source` and the key when it is malformed."""
    cls = get_key(description, "class", source, str)
    if cls == "Normalized":
        if depth > 0:
            raise ValueError(f"{source}: a Normalized model may wrap only a plain model, not another Normalized")
        try:
            return Normalized(build(get_key(description, "model", source, dict), source, depth + 1),
                              get_key(description, "mean", source, list), get_key(description, "std", source, list))
        except (TypeError, RuntimeError) as err:
            raise ValueError(f"{source}: keys 'mean' and 'std' must be lists of numbers, one per channel ({err})") \
                from None
    if cls not in MODELS:
        raise ValueError(f"{source}: key 'class': unknown model class {cls!r}; known: {sorted(MODELS)}")
    try:
        return MODELS[cls](**get_key(description, "config", source, dict))
    except (TypeError, ValueError, AssertionError, RuntimeError) as err:
        raise ValueError(f"{source}: key 'config' does not fit {cls} ({err})") from None


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
    model = build(read_json(side, "model sidecar"), side)
    tensors = read_safetensors(path)
    check_finite_tensors(tensors, path)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the model its sidecar {side.name} describes: "
                         f"{' '.join(str(err).split())[:400]}") from None
    return model.to(device).eval()
