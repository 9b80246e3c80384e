"""Atomic file writes: write a temporary file beside the target, then rename it over the target, so an
interruption never leaves a partial file where a good one was."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file


def atomic_write(path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, then atomically replace `path` with it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path, obj, indent: int = 1, ensure_ascii: bool = True, newline: bool = False) -> Path:
    """`obj` as JSON at `path`; `newline` ends the file with one."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii) + ("\n" if newline else ""))


def write_safetensors(path, tensors: dict[str, torch.Tensor]) -> Path:
    """The tensors (detached, copied to the CPU, contiguous) as a safetensors file at `path`."""
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(cpu, str(p)))
