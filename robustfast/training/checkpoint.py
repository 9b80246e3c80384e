"""Resumable checkpoints for long jobs: tensors in safetensors, everything else in checkpoint.json.

Each save writes a new tensor file, then atomically replaces checkpoint.json (which names that file), then
deletes the previous tensor file; an interruption at any point leaves a consistent pair on disk.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from robustfast._util.atomic import write_json, write_safetensors

INDEX = "checkpoint.json"


def _read_index(directory: Path) -> dict | None:
    path = directory / INDEX
    return json.loads(path.read_text()) if path.is_file() else None


def save_checkpoint(directory, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Save `tensors` (name -> tensor) and the JSON-able `state` to `directory`, replacing what was there."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    old = _read_index(directory)
    serial = old["serial"] + 1 if old else 1
    name = f"checkpoint-{serial:06d}.safetensors"
    write_safetensors(directory / name, tensors)
    write_json(directory / INDEX, {"serial": serial, "tensors": name, "state": state})
    if old and old["tensors"] != name:
        (directory / old["tensors"]).unlink(missing_ok=True)


def load_checkpoint(directory) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors, state) of the last checkpoint in `directory`, tensors on the CPU; None if there is none."""
    directory = Path(directory)
    index = _read_index(directory)
    if index is None:
        return None
    return load_file(str(directory / index["tensors"])), index["state"]


def optimizer_to_checkpoint(optimizer: torch.optim.Optimizer,
                            prefix: str = "optimizer.") -> tuple[dict, dict]:
    """Split an optimizer's state_dict into safetensors-ready tensors and a JSON-able rest."""
    sd = optimizer.state_dict()
    tensors, rest = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{idx}.{key}"] = value
            else:
                rest.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": rest}


def optimizer_from_checkpoint(optimizer: torch.optim.Optimizer, tensors: dict, rest: dict,
                              prefix: str = "optimizer.") -> None:
    """Inverse of `optimizer_to_checkpoint`: load the saved state into `optimizer`."""
    state: dict[int, dict] = {int(idx): dict(entry) for idx, entry in rest["state"].items()}
    for name, value in tensors.items():
        if name.startswith(prefix):
            idx, key = name[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
