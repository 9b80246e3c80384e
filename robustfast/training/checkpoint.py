"""Resumable checkpoints for long jobs: tensors in safetensors, everything else in checkpoint.json.

Each save writes a new tensor file, then atomically replaces checkpoint.json (which names that file), then
deletes every other tensor file; an interruption at any point leaves a consistent pair on disk. What a kill can
leave behind (the previous tensor file when the kill falls between the index and the delete, a half-written
`*.tmp`, a tensor file written before its index) is removed on the next start: `load_checkpoint` (the resume)
and the next save both delete every checkpoint file the index does not name.
"""
from __future__ import annotations

from pathlib import Path

import torch

from robustfast._util.atomic import write_json, write_safetensors
from robustfast._util.checks import get_key, read_json, read_safetensors

INDEX = "checkpoint.json"


def _read_index(directory: Path) -> dict | None:
    path = directory / INDEX
    if not path.is_file():
        return None
    index = read_json(path, "checkpoint index")
    name = get_key(index, "tensors", path, str)
    get_key(index, "serial", path, int)
    get_key(index, "state", path, dict)
    if Path(name).name != name or not name.startswith("checkpoint-") or not name.endswith(".safetensors"):
        raise ValueError(f"{path}: key 'tensors' must name a checkpoint-*.safetensors file in {directory}, "
                         f"got {name!r}")
    return index


def _remove_stale(directory: Path, keep: str | None) -> None:
    """Delete this module's files in `directory` other than the tensor file `keep` and the index: older or
    orphaned `checkpoint-*.safetensors` and unfinished `*.tmp` writes. Never touches other files."""
    stale = [*directory.glob("checkpoint-*.safetensors"), *directory.glob("checkpoint-*.safetensors.tmp"),
             directory / (INDEX + ".tmp")]
    for path in stale:
        if path.name != keep:
            path.unlink(missing_ok=True)


def save_checkpoint(directory, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Save `tensors` (name -> tensor) and the JSON-able `state` to `directory`, replacing what was there."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    old = _read_index(directory)
    serial = old["serial"] + 1 if old else 1
    name = f"checkpoint-{serial:06d}.safetensors"
    write_safetensors(directory / name, tensors)
    write_json(directory / INDEX, {"serial": serial, "tensors": name, "state": state})
    _remove_stale(directory, name)


def load_checkpoint(directory) -> tuple[dict[str, torch.Tensor], dict] | None:
    """(tensors, state) of the last checkpoint in `directory`, tensors on the CPU; None if there is none.

    Called when a job starts (to resume), it first deletes what an interrupted save left behind (see the module
    docstring), so it must not run while another process saves to the same directory."""
    directory = Path(directory)
    index = _read_index(directory)
    if directory.is_dir():
        _remove_stale(directory, index["tensors"] if index else None)
    if index is None:
        return None
    return read_safetensors(directory / index["tensors"]), index["state"]


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
