"""Input checks shared by the ops and the algorithms: each failure is a ValueError naming the argument.

Checks that would read tensor values on the host (and so synchronise a GPU) live in `check_images` alone,
which algorithms call once per call, never inside a step loop.
"""
from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import torch


def require(name: str, value, ok: bool, want: str) -> None:
    """A ValueError naming the argument, what it must be and what it was, unless `ok`."""
    if not ok:
        raise ValueError(f"{name} must be {want}, got {value!r}")


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision kernels compute in: float64 for float64 data, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_float_tensor(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


def check_like(t, ref: torch.Tensor, name: str, ref_name: str) -> None:
    check_float_tensor(t, name)
    if t.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(t.shape)}")
    if t.dtype != ref.dtype:
        raise ValueError(f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; move both to one device")


def per_sample(v, n: int, name: str, dtype: torch.dtype, device: torch.device, minimum: float = 0.0,
               maximum: float = math.inf):
    """A number or a tensor of shape () or (n,) as a contiguous (n,) tensor of `dtype`.

    A number is checked here (not NaN, minimum <= v <= maximum; a finite `maximum` also rejects inf), without
    any host read; a tensor's values are not read: its caller checks them once, outside any step loop."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        if not v >= minimum:  # also rejects NaN
            raise ValueError(f"{name} must be >= {minimum}, got {v}")
        if not v <= maximum:
            raise ValueError(f"{name} must be a finite number <= {maximum:g}, got {v}")
        return torch.full((n,), float(v), dtype=dtype, device=device)
    if isinstance(v, torch.Tensor):
        if v.dim() == 0:
            v = v.expand(n)
        if v.shape != (n,):
            raise ValueError(f"{name} must be a number or a tensor of shape ({n},), got shape {tuple(v.shape)}")
        if v.device != device:
            raise ValueError(f"{name} is on {v.device} but the data is on {device}")
        return v.to(dtype).contiguous()
    raise ValueError(f"{name} must be a number or a tensor, got {type(v).__name__}")


def check_bounds(lower: float, upper: float) -> None:
    if not (float(lower) < float(upper)):
        raise ValueError(f"lower must be < upper, got lower={lower}, upper={upper}")


def check_images(images, name: str = "images", lower: float = 0.0, upper: float = 1.0) -> None:
    """Float N×C×H×W, finite, within [lower, upper]. Reads values: call once, outside step loops."""
    check_float_tensor(images, name)
    if images.dim() != 4:
        raise ValueError(f"{name} must be N×C×H×W (rank 4), got rank {images.dim()} with shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or inf")
    lo, hi = images.min().item(), images.max().item()
    if lo < lower or hi > upper:
        raise ValueError(
            f"{name} must lie in [{lower:g}, {upper:g}] (got [{lo:.4g}, {hi:.4g}]); pass raw images and put the "
            "normalisation inside the model with robustfast.models.Normalized(model, mean, std)"
        )


def check_labels(labels, n: int, device: torch.device, name: str = "labels") -> None:
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one class index per image), got {tuple(labels.shape)}")
    if labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must be an integer tensor of class indices, got dtype {labels.dtype}")
    if labels.device != device:
        raise ValueError(f"{name} is on {labels.device} but the images are on {device}")


# --- issue 13: typed rejections and loaders that name the file and the key ---------------------------------------

def require_type(name: str, value, ok: bool, want: str) -> None:
    """A TypeError naming the argument, what it must be and the type it was, unless `ok`."""
    if not ok:
        raise TypeError(f"{name} must be {want}, got {type(value).__name__}")


def check_dataset(data, name: str = "train_set") -> None:
    """A map-style dataset of (image, label) pairs: something with __len__ and __getitem__, not empty."""
    require_type(name, data, hasattr(data, "__len__") and hasattr(data, "__getitem__"),
                 "a Dataset of (image, label) pairs (e.g. a TensorDataset)")
    if len(data) < 1:
        raise ValueError(f"{name} must be a non-empty dataset, got one of length 0")


def check_not_meta(model, name: str = "model") -> None:
    """Meta tensors hold no values: a model with any cannot train or predict."""
    for key, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_meta:
            raise ValueError(f"{name} has meta tensors (no data), e.g. {key!r}; materialise it first "
                             "(model.to_empty(device=...) and load weights)")


def check_finite_tensors(tensors: dict, source) -> None:
    """A ValueError naming `source` (a file) and the first floating-point entry holding NaN or inf."""
    for key, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{source}: tensor {key!r} contains NaN or inf; the file is corrupt")


def read_json(path, what: str = "JSON file"):
    """The parsed JSON at `path`; a ValueError naming the file for a missing, unreadable or malformed one."""
    import json

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the {what}: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise ValueError(f"{path}: the {what} is nested too deeply to be valid") from None


def read_safetensors(path) -> dict:
    """The tensors of the safetensors file at `path`, on the CPU; a ValueError naming the file when it is corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: tensor file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None


def get_key(mapping, key: str, source, want: type | tuple | None = None):
    """mapping[key], or a ValueError naming `source` (a file) and the key when it is missing or of the wrong type."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{source}: expected a mapping holding {key!r}, got {type(mapping).__name__}")
    if key not in mapping:
        raise ValueError(f"{source}: missing key {key!r}")
    value = mapping[key]
    if want is not None and (not isinstance(value, want) or (isinstance(value, bool) and bool not in (
            want if isinstance(want, tuple) else (want,)))):
        names = "/".join(w.__name__ for w in (want if isinstance(want, tuple) else (want,)))
        raise ValueError(f"{source}: key {key!r} must be of type {names}, got {type(value).__name__}")
    return value
