"""Synthetic label noise: symmetric and asymmetric (class-dependent), as in the normalized-loss / APL experiments.

Randomness comes from numpy's RandomState(seed), drawn in the order of the published code
(HanxunH/Active-Passive-Losses), so a seed gives the same noisy labels on every platform.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

KINDS = ("symmetric", "asymmetric")
# source → target, flipping exactly ⌊rate·|source|⌋ samples of each source class, in this order
CIFAR10 = {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}  # truck → automobile, bird → airplane, cat ↔ dog, deer → horse
# source → target, each sample of a source class flipping with probability rate
MNIST = {7: 1, 2: 7, 5: 6, 6: 5, 3: 8}
MAPPINGS = ("cifar10", "mnist", "cifar100")


def _check(labels, kind, rate, num_classes, seed) -> np.ndarray:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'symmetric' or 'asymmetric', got {kind!r}")
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer tensor of class indices, got shape {y.shape}, "
                         f"dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _symmetric(y: np.ndarray, rate: float, k: int, rs: np.random.RandomState) -> np.ndarray:
    per_class = int(rate * len(y)) // k
    chosen = []
    for c in range(k):
        pool = np.flatnonzero(y == c)
        if len(pool) < per_class:
            raise ValueError(f"rate={rate} asks for {per_class} flips in every class, but class {c} has only "
                             f"{len(pool)} samples")
        chosen.extend(rs.choice(pool, per_class, replace=False))
    chosen = np.asarray(chosen, dtype=np.int64)
    # one uniform draw among the K−1 other classes per sample: the stream of the published per-sample loop
    draw = rs.randint(0, k - 1, size=len(chosen))
    noisy = y.copy()
    noisy[chosen] = draw + (draw >= y[chosen])
    return noisy


def _exact_pairs(y: np.ndarray, rate: float, pairs: dict, rs: np.random.RandomState, inplace: bool) -> np.ndarray:
    noisy = y.copy()
    for s, t in pairs.items():
        pool = np.flatnonzero((noisy if inplace else y) == s)
        noisy[rs.choice(pool, int(rate * len(pool)), replace=False)] = t
    return noisy


def _transition(y: np.ndarray, matrix: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    return np.array([np.flatnonzero(rs.multinomial(1, matrix[c], 1)[0])[0] for c in y], dtype=np.int64)


def _pair_matrix(pairs: dict, rate: float, k: int) -> np.ndarray:
    matrix = np.eye(k)
    for s, t in pairs.items():
        matrix[s, s], matrix[s, t] = 1.0 - rate, rate
    return matrix


def _cifar100_matrix(rate: float) -> np.ndarray:
    """Within each block of 5 consecutive classes, i → i+1 with probability rate, the last wrapping to the first."""
    matrix = (1.0 - rate) * np.eye(100)
    for c in range(100):
        matrix[c, c - c % 5 + (c + 1) % 5] += rate
    return matrix


def _check_pairs(mapping: dict, k: int) -> dict:
    pairs = {}
    for s, t in mapping.items():
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v < k for v in (s, t)):
            raise ValueError(f"mapping must map class indices in [0, {k}) to class indices, got {s!r}: {t!r}")
        if s == t:
            raise ValueError(f"mapping sends class {s} to itself")
        pairs[int(s)] = int(t)
    return pairs


def _asymmetric(y, rate, k, mapping, rs, sequential_inplace) -> np.ndarray:
    if isinstance(mapping, dict):
        return _exact_pairs(y, rate, _check_pairs(mapping, k), rs, sequential_inplace)
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(MAPPINGS)} or a dict {{source: target}} for "
                         f"asymmetric noise, got {mapping!r}")
    need = 100 if mapping == "cifar100" else 10
    if k != need:
        raise ValueError(f"mapping={mapping!r} is for {need} classes, but num_classes={k}")
    if mapping == "cifar10":
        return _exact_pairs(y, rate, CIFAR10, rs, sequential_inplace)
    if sequential_inplace:
        raise ValueError(f"sequential_inplace applies to the exact-count mappings, not to mapping={mapping!r}")
    matrix = _pair_matrix(MNIST, rate, k) if mapping == "mnist" else _cifar100_matrix(rate)
    return _transition(y, matrix, rs)


def noisy_labels(labels, kind: str = "symmetric", rate: float = 0.4, num_classes: int = 10, seed: int = 0,
                 mapping: str | dict | None = None, sequential_inplace: bool = False):
    """Corrupt `labels` (1-D integer tensor or array) with label noise; returns (noisy_labels, flipped_mask).

    symmetric: n = ⌊rate·N⌋; from each class exactly ⌊n/K⌋ samples, drawn without replacement, are relabelled
      uniformly to one of the K−1 *other* classes (a new label never equals the old one), so the realised noise
      rate, flipped_mask.float().mean(), is K·⌊n/K⌋/N ≤ rate. A class smaller than ⌊n/K⌋ raises.
    asymmetric: class-dependent flips given by `mapping`:
      "cifar10": truck→automobile, bird→airplane, cat→dog, dog→cat, deer→horse; exactly ⌊rate·|class|⌋ samples of
        each source class flip, drawn from the original labels (so no flipped cat is flipped back). With
        sequential_inplace=True each pool is built from the labels as already flipped, the published code's quirk
        (cat noise ≈ rate·(1−rate)).
      "mnist" (also for digits): 7→1, 2→7, 5→6, 6→5, 3→8, each sample of a source class flipping with probability
        rate (drawn from the transition matrix, so counts are not exact); other classes are untouched.
      "cifar100": within blocks of 5 consecutive classes i→i+1 (the last wraps), each sample with probability rate.
      a dict {source: target}: exact counts as for "cifar10", in the dict's order.

    Deterministic in `seed`. noisy_labels has the dtype and device of `labels` when it is a tensor (int64 on the
    CPU otherwise); flipped_mask is a bool tensor, True where the noisy label differs from the original.
    """
    y = _check(labels, kind, rate, num_classes, seed)
    if not isinstance(sequential_inplace, bool):
        raise ValueError(f"sequential_inplace must be True or False, got {sequential_inplace!r}")
    rs = np.random.RandomState(seed)
    if kind == "symmetric":
        if mapping is not None or sequential_inplace:
            raise ValueError("mapping and sequential_inplace apply to asymmetric noise only; leave them unset")
        noisy = _symmetric(y, float(rate), int(num_classes), rs)
    else:
        if mapping is None:
            raise ValueError(f"asymmetric noise needs a mapping: one of {', '.join(MAPPINGS)} or a dict "
                             "{source: target}")
        noisy = _asymmetric(y, float(rate), int(num_classes), mapping, rs, sequential_inplace)
    like = labels if isinstance(labels, torch.Tensor) else torch.empty(0, dtype=torch.int64)
    out = torch.from_numpy(noisy).to(dtype=like.dtype, device=like.device)
    return out, torch.from_numpy(noisy != y).to(like.device)
