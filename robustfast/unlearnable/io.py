"""An unlearnable data set on disk: unlearnable-<serial>.safetensors (images, labels, noise) + unlearnable.json
(how it was made, and which tensor file holds the set). Images are stored as uint8 when they were quantised, else
as float32 in [0, 1].

A save is atomic as a unit: it writes a new tensor file under a fresh name, then commits by one rename of
unlearnable.json, which names that file, then deletes the tensor files the sidecar no longer names. A kill at any
point leaves the old pair or the new pair, never new tensors beside old metadata; a half-written or orphaned
tensor file is removed by the next save. Sets written before the sidecar named its tensor file
(unlearnable.safetensors, no "tensors" key) still load.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from robustfast._util.atomic import write_json, write_safetensors
from robustfast._util.checks import check_finite_tensors, get_key, read_json, read_safetensors
from robustfast.unlearnable.apply import to_uint8

TENSORS, SIDECAR = "unlearnable.safetensors", "unlearnable.json"  # TENSORS: the name before sidecars named it


def _tensor_name(serial: int) -> str:
    return f"unlearnable-{serial:06d}.safetensors"


def _committed(directory: Path) -> dict | None:
    side = directory / SIDECAR
    return read_json(side, "unlearnable sidecar") if side.is_file() else None


def save_unlearnable(directory, images: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor,
                     meta: dict, quantized: bool) -> Path:
    """Write the set to `directory` and return the tensor file's path. `meta` must be JSON-able."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stored = to_uint8(images) if quantized else images.float()
    tensors = {"images": stored, "labels": labels.long(), "noise": noise.float()}
    try:
        old = _committed(directory)
    except ValueError:
        old = None  # a corrupt sidecar is replaced by this save
    serial = old.get("serial", 0) + 1 if isinstance(old, dict) and isinstance(old.get("serial"), int) else 1
    name = _tensor_name(serial)
    write_safetensors(directory / name, tensors)
    write_json(directory / SIDECAR, {**meta, "images_dtype": str(stored.dtype).removeprefix("torch."),
                                     "tensors": name, "serial": serial}, newline=True)  # the commit
    for stale in [directory / TENSORS, *directory.glob("unlearnable-*.safetensors"),
                  *directory.glob("unlearnable*.tmp")]:
        if stale.name != name:
            stale.unlink(missing_ok=True)
    return directory / name


def load_unlearnable(directory) -> tuple[TensorDataset, torch.Tensor, dict]:
    """(the set as float images in [0, 1] with labels, the noise, the sidecar's metadata)."""
    directory = Path(directory)
    side = directory / SIDECAR
    meta = _committed(directory)
    if meta is None:
        raise FileNotFoundError(f"{side} not found: an unlearnable set is {SIDECAR} plus the tensor file it names")
    name = get_key(meta, "tensors", side, str) if isinstance(meta, dict) and "tensors" in meta else TENSORS
    if Path(name).name != name:
        raise ValueError(f"{side}: key 'tensors' must name a file in {directory}, got {name!r}")
    path = directory / name
    tensors = read_safetensors(path)
    images, labels, noise = (get_key(tensors, key, path) for key in ("images", "labels", "noise"))
    check_finite_tensors({"images": images, "noise": noise}, path)
    if images.dim() != 4 or images.shape[0] < 1 or images.dtype not in (torch.uint8, torch.float32):
        raise ValueError(f"{path}: key 'images' must be a non-empty N×C×H×W uint8 or float32 tensor, got "
                         f"{images.dtype} {tuple(images.shape)}")
    if labels.shape != images.shape[:1] or labels.dtype != torch.int64:
        raise ValueError(f"{path}: key 'labels' must be an int64 tensor of shape ({images.shape[0]},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if noise.dim() != 4 or noise.shape[1:] != images.shape[1:]:
        raise ValueError(f"{path}: key 'noise' must be K×{'×'.join(map(str, images.shape[1:]))}, got "
                         f"{tuple(noise.shape)}")
    if images.dtype == torch.float32 and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{path}: key 'images' must lie in [0, 1]")
    images = images.float() / 255 if images.dtype == torch.uint8 else images
    return TensorDataset(images, labels), noise, meta
