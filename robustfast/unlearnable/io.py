"""An unlearnable data set on disk: unlearnable.safetensors (images, labels, noise) + unlearnable.json (how it was
made). Images are stored as uint8 when they were quantised, else as float32 in [0, 1]. Writes are atomic."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.utils.data import TensorDataset

from robustfast._util.atomic import write_json, write_safetensors
from robustfast.unlearnable.apply import to_uint8

TENSORS, SIDECAR = "unlearnable.safetensors", "unlearnable.json"


def save_unlearnable(directory, images: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor,
                     meta: dict, quantized: bool) -> Path:
    """Write the set to `directory` and return the tensor file's path. `meta` must be JSON-able."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stored = to_uint8(images) if quantized else images.float()
    tensors = {"images": stored, "labels": labels.long(), "noise": noise.float()}
    write_safetensors(directory / TENSORS, tensors)
    write_json(directory / SIDECAR, {**meta, "images_dtype": str(stored.dtype).removeprefix("torch.")}, newline=True)
    return directory / TENSORS


def load_unlearnable(directory) -> tuple[TensorDataset, torch.Tensor, dict]:
    """(the set as float images in [0, 1] with labels, the noise, the sidecar's metadata)."""
    directory = Path(directory)
    tensors = load_file(str(directory / TENSORS))
    meta = json.loads((directory / SIDECAR).read_text())
    images = tensors["images"]
    images = images.float() / 255 if images.dtype == torch.uint8 else images
    return TensorDataset(images, tensors["labels"]), tensors["noise"], meta
