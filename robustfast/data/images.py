"""Image datasets as TensorDatasets of float N×C×H×W images in [0, 1] and int64 labels.

`dataset.tensors` gives the (images, labels) pair when plain tensors are wanted.
"""
from __future__ import annotations

import codecs
import functools
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

SPLITS = ("train", "test")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def digits_split(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices into scikit-learn's digits: per class, a seeded shuffle, the first
    round(test_fraction·n_class) to test. The same seed gives the same split on every call and platform."""
    labels = _digits_arrays()[1]
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = round(test_fraction * len(idx))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits(split: str = "train", size: int | None = None, channels: int = 1, seed: int = 0,
           test_fraction: float = 0.2) -> TensorDataset:
    """scikit-learn's 1,797 handwritten digits (8×8, pixel values / 16), split stratified by `seed`, a
    `test_fraction` of each class to test (80/20 by default).

    size=32 upsamples bilinearly to 32×32; channels=3 repeats the gray channel.
    """
    _check_split(split)
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be None (8×8) or a positive int such as 32, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    images, labels = _digits_arrays()
    idx = digits_split(seed, test_fraction)[SPLITS.index(split)]
    x = torch.from_numpy(images[idx]).unsqueeze(1)
    if size is not None and size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    dataset = TensorDataset(x.contiguous(), torch.from_numpy(labels[idx]))
    dataset.split = split  # read by methods that must never score on the test split (robustfast.nas)
    return dataset


try:  # numpy 2 moved the array reconstructor to numpy._core; pickles name either module
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

def _empty_reconstruct(subtype, shape, dtype):
    """numpy's pickles rebuild an array as _reconstruct(ndarray, (0,), ...) and then fill it from the file's bytes
    (whose size numpy checks); a shape asking for more is refused before anything is allocated."""
    if subtype is not np.ndarray or not isinstance(shape, tuple) or not all(
            isinstance(d, int) and 0 <= d <= 1 for d in shape):
        raise pickle.UnpicklingError(f"refusing an array header of shape {shape!r}: numpy writes (0,) and fills "
                                     "the array from the file's own bytes")
    return _reconstruct(subtype, shape, dtype)


_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _empty_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _empty_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at protocol 2
}


class CorruptBatchError(pickle.UnpicklingError, ValueError):
    """A CIFAR batch that is not a plain pickle of arrays: an UnpicklingError and a ValueError."""


class _ArrayUnpickler(pickle.Unpickler):
    """Loads pickles of plain containers and numpy arrays; any other class or callable is refused."""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            msg = f"refusing to load {module}.{name}: only numpy arrays are allowed"
            raise pickle.UnpicklingError(msg) from None


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N×3×32×32 images, int64 labels in [0, 10)) of one CIFAR-10 python batch; anything else is a
    ValueError naming the file and the key (nothing is cast: float data or labels out of range are refused)."""
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:  # a refused global or a broken pickle: both kinds, naming the file
        raise CorruptBatchError(f"{path}: {err}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, MemoryError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a CIFAR-10 batch is a pickled dict, got {type(d).__name__}")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    for key in ("data", "labels"):
        if key not in d:
            raise ValueError(f"{path}: missing key {key!r}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: key 'data' must be a uint8 array of shape (N, 3072), got {what}")
    labels = d["labels"]
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < 10 for v in labels):
        raise ValueError(f"{path}: key 'labels' must be a list of {len(data)} class indices in [0, 10)")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def cifar10(root, split: str = "train") -> TensorDataset:
    """CIFAR-10 from the standard python batches in `root` or `root/cifar-10-batches-py`."""
    _check_split(split)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    root = Path(root)
    candidates = [d for d in (root, root / "cifar-10-batches-py") if all((d / n).is_file() for n in names)]
    if not candidates:
        raise FileNotFoundError(
            f"CIFAR-10 {split} batches not found in {root} or {root / 'cifar-10-batches-py'}: expected files "
            f"{', '.join(names)} (unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)")
    parts = [_load_batch(candidates[0] / n) for n in names]
    x = torch.from_numpy(np.concatenate([p[0] for p in parts])).float().div_(255)
    return TensorDataset(x, torch.from_numpy(np.concatenate([p[1] for p in parts])))


def synthetic(n: int, shape=(3, 32, 32), classes: int = 10, seed: int = 0) -> TensorDataset:
    """n uniform random images in [0, 1] of `shape` and uniform labels in [0, classes), fixed by `seed`."""
    if n < 1 or classes < 1:
        raise ValueError(f"n and classes must be >= 1, got n={n}, classes={classes}")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=g)
    return TensorDataset(x, torch.randint(0, classes, (n,), generator=g))


def loader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0, **kwargs) -> DataLoader:
    """A DataLoader whose shuffling order is fixed by `seed`; extra keyword arguments go to DataLoader."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed), **kwargs)
