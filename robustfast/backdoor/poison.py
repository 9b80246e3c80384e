"""Poison a training set with one or several triggers, with exact and saved bookkeeping (specs/multi_trigger.md §1).

Counts are exact: each trigger (each round, in sequential mode) poisons nb = ⌊rate·N⌋ images. Multi-trigger modes:
- parallel: T·nb distinct indices drawn without replacement; trigger k poisons the k-th slice of nb (rate is per
  trigger, the total share is T·rate);
- sequential: trigger k poisons nb indices in round k, drawn from the data the earlier rounds left behind, so it
  may land on images that already carry a trigger: it is applied on top and its label overwrites. `overlap`
  (a share of nb) forces that many of each later round's images to come from the already poisoned ones;
- hybrid: the triggers form one composite (applied in turn to the same images), which poisons nb images.
Label modes: all2one (y ← target), all2all (y ← (y+1) mod C), all2random (trigger k ← π(k mod C), π a seeded
permutation of the classes), clean-label (only images of the target class are poisoned; labels unchanged). As in
the reference code, all2one draws from every class unless exclude_target=True.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from robustfast._util.atomic import write_json, write_safetensors
from robustfast._util.checks import check_finite_tensors, check_images, get_key, read_json, read_safetensors
from robustfast._util.seeds import stream_seed
from robustfast.backdoor.base import Trigger
from robustfast.backdoor.stack import apply_stacked
from robustfast.backdoor.triggers import Hybrid, make_trigger

LABEL_MODES = ("all2one", "all2all", "all2random", "clean-label")
MULTI_MODES = ("parallel", "sequential", "hybrid")


def as_triggers(triggers, seed: int = 0) -> list[Trigger]:
    """Trigger objects from a name, a Trigger, or a list of them (names are built with `seed`)."""
    if isinstance(triggers, (str, Trigger, dict)):
        triggers = [triggers]
    if not isinstance(triggers, (list, tuple)) or not triggers:
        raise ValueError("triggers must be a trigger name, a Trigger, or a non-empty list of them")
    return [make_trigger(t, seed=seed) if isinstance(t, str) else make_trigger(t) for t in triggers]


def trigger_targets(count: int, target: int, label_mode: str, num_classes: int, seed: int) -> list[int | None]:
    """The target class of each of `count` triggers (None under all2all, where the target depends on y)."""
    if label_mode == "all2all":
        return [None] * count
    if label_mode == "all2random":
        perm = torch.randperm(num_classes, generator=torch.Generator().manual_seed(stream_seed(seed, 2)))
        return [int(perm[k % num_classes]) for k in range(count)]
    return [int(target)] * count


def _check_common(images, labels, rate, target, label_mode, num_classes):
    check_images(images, "images")
    n = images.shape[0]
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels must be an integer tensor of shape ({n},), one class per image")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    if not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) for num_classes={num_classes}")
    if rate is not None and not (isinstance(rate, numbers.Real) and not isinstance(rate, bool) and 0 < rate <= 1):
        raise ValueError(f"rate must lie in (0, 1], got {rate!r}")
    if not isinstance(target, numbers.Integral) or isinstance(target, bool) or not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index in [0, {num_classes}), got {target!r}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}; got {label_mode!r}")
    return int(num_classes)


class PoisonedDataset(TensorDataset):
    """A poisoned training set: a TensorDataset of (images, labels) with its bookkeeping.

    original_labels: the labels before poisoning. trigger_ids (N,): the last trigger each image carries, −1 when
    clean. applied (N, T) bool: every trigger each image carries (several only in sequential mode).
    poison_indices: the sorted indices of poisoned images. slices: the indices each trigger (round) poisoned, in
    draw order. targets: each trigger's target class (None under all2all). config: the poisoning arguments.
    """

    def __init__(self, images, labels, original_labels, trigger_ids, applied, slices, triggers, targets, config):
        super().__init__(images, labels)
        self.images, self.labels, self.original_labels = images, labels, original_labels
        self.trigger_ids, self.applied, self.slices = trigger_ids, applied, slices
        self.triggers, self.targets, self.config = triggers, targets, config

    @property
    def poison_indices(self) -> torch.Tensor:
        return (self.trigger_ids >= 0).nonzero().flatten()

    def save(self, path) -> None:
        """Write tensors to `path` (safetensors) and the configuration, triggers and targets to path.json."""
        path = Path(path)
        tensors = {"images": self.images, "labels": self.labels, "original_labels": self.original_labels,
                   "trigger_ids": self.trigger_ids, "applied": self.applied.to(torch.uint8)}
        tensors.update({f"slice.{k}": s for k, s in enumerate(self.slices)})
        for k, t in enumerate(self.triggers):
            tensors.update({f"trigger.{k}.{name}": v for name, v in t.state_tensors().items()})
        side = {"config": self.config, "targets": self.targets, "triggers": [t.config() for t in self.triggers],
                "slices": len(self.slices)}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_safetensors(path, tensors)
        write_json(path.with_suffix(".json"), side)

    @classmethod
    def load(cls, path) -> PoisonedDataset:
        path = Path(path)
        side_path = path.with_suffix(".json")
        for p in (path, side_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: a poisoned dataset is {path} plus {side_path}")
        t = read_safetensors(path)
        side = read_json(side_path, "poisoned dataset sidecar")
        configs = get_key(side, "triggers", side_path, list)
        n_slices = get_key(side, "slices", side_path, int)
        targets = get_key(side, "targets", side_path, list)
        config = get_key(side, "config", side_path, dict)
        triggers = []
        for k, cfg in enumerate(configs):
            prefix = f"trigger.{k}."
            try:
                trig = make_trigger(cfg)
                trig.load_state_tensors({n[len(prefix):]: v for n, v in t.items() if n.startswith(prefix)})
            except (ValueError, TypeError, RuntimeError, KeyError) as err:
                raise ValueError(f"{side_path}: key 'triggers', entry {k}: {' '.join(str(err).split())[:300]}") \
                    from None
            triggers.append(trig)
        images, labels, original, ids, applied = (get_key(t, key, path, torch.Tensor) for key in (
            "images", "labels", "original_labels", "trigger_ids", "applied"))
        slices = [get_key(t, f"slice.{k}", path, torch.Tensor) for k in range(n_slices)]
        _check_loaded(path, side_path, images, labels, original, ids, applied, slices, triggers, targets)
        return cls(images, labels, original, ids, applied.bool(), slices, triggers, targets, config)


def _check_loaded(path, side_path, images, labels, original, ids, applied, slices, triggers, targets) -> None:
    """The saved tensors agree with each other and with the triggers; otherwise a ValueError naming file and key."""
    n, t = images.shape[0] if images.dim() else -1, len(triggers)
    check_finite_tensors({"images": images}, path)
    if images.dim() != 4 or n < 1:
        raise ValueError(f"{path}: key 'images' must be a non-empty N×C×H×W tensor, got shape {tuple(images.shape)}")
    integer = (torch.int64, torch.int32)
    for key, v in (("labels", labels), ("original_labels", original), ("trigger_ids", ids)):
        if v.shape != (n,) or v.dtype not in integer:
            raise ValueError(f"{path}: key {key!r} must be an integer tensor of shape ({n},), got {v.dtype} "
                             f"{tuple(v.shape)}")
    if applied.shape != (n, t):
        raise ValueError(f"{path}: key 'applied' must have shape ({n}, {t}) for {t} triggers, got "
                         f"{tuple(applied.shape)}")
    if len(ids) and (int(ids.min()) < -1 or int(ids.max()) >= t):
        raise ValueError(f"{path}: key 'trigger_ids' must lie in [-1, {t}) for the {t} triggers of {side_path.name}, "
                         f"got values in [{int(ids.min())}, {int(ids.max())}]")
    for k, sl in enumerate(slices):
        if sl.dim() != 1 or sl.dtype not in integer or (len(sl) and (int(sl.min()) < 0 or int(sl.max()) >= n)):
            raise ValueError(f"{path}: key 'slice.{k}' must be a 1-d tensor of image indices in [0, {n})")
    if len(targets) != t or any(v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0)
                                for v in targets):
        raise ValueError(f"{side_path}: key 'targets' must give one class index (or null) per trigger: {t} "
                         f"triggers, got {targets!r}")


def _draw(pool: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    return pool[torch.randperm(len(pool), generator=gen)[:count]]


def _slices(pool, n_triggers, nb, multi, overlap, gen) -> list[torch.Tensor]:
    if multi != "sequential":
        if n_triggers * nb > len(pool):
            raise ValueError(f"rate: {n_triggers} trigger(s) × {nb} images = {n_triggers * nb} poisoned images, more "
                             f"than the {len(pool)} eligible samples; lower the rate or use fewer triggers")
        return list(_draw(pool, n_triggers * nb, gen).split(nb))
    if nb > len(pool):
        raise ValueError(f"rate: {nb} images per round but only {len(pool)} eligible samples")
    slices, poisoned = [], torch.zeros(0, dtype=torch.long)
    for k in range(n_triggers):
        if k == 0 or overlap is None:
            chosen = _draw(pool, nb, gen)
        else:
            again = _draw(poisoned, min(round(overlap * nb), len(poisoned)), gen)
            fresh = pool[~torch.isin(pool, poisoned)]
            chosen = torch.cat([again, _draw(fresh, nb - len(again), gen)])
        slices.append(chosen)
        poisoned = torch.unique(torch.cat([poisoned, chosen]))
    return slices


def poison(images: torch.Tensor, labels: torch.Tensor, triggers, rate: float, target: int = 0,
           label_mode: str = "all2one", multi: str = "parallel", seed: int = 0, num_classes: int | None = None,
           overlap: float | None = None, exclude_target: bool = False) -> PoisonedDataset:
    """Poison float N×C×H×W images in [0, 1] with `triggers` (names such as "badnets", "blend", "sig", "wanet",
    Trigger objects, or a list of them) at `rate` per trigger; see the module docstring for the modes.
    The same arguments and seed give the same dataset."""
    num_classes = _check_common(images, labels, rate, target, label_mode, num_classes)
    if multi not in MULTI_MODES:
        raise ValueError(f"multi must be one of {', '.join(MULTI_MODES)}; got {multi!r}")
    if overlap is not None and (multi != "sequential" or not 0 <= overlap <= 1):
        raise ValueError(f"overlap must be None or a share in [0, 1], and only with multi='sequential'; "
                         f"got {overlap!r} with multi={multi!r}")
    trigs = as_triggers(triggers, seed)
    if multi == "hybrid":
        if len(trigs) < 2:
            raise ValueError("triggers: multi='hybrid' combines several triggers; give at least two")
        trigs = [Hybrid(trigs, seed=seed)]
    n = images.shape[0]
    nb = math.floor(rate * n + 1e-9)
    if nb < 1:
        raise ValueError(f"rate {rate} of {n} samples poisons no image; use rate >= {1 / n:.3g}")
    targets = trigger_targets(len(trigs), target, label_mode, num_classes, seed)
    labels = labels.long()
    if label_mode == "clean-label":
        pool = (labels.cpu() == target).nonzero().flatten()
    elif exclude_target and label_mode != "all2all":
        pool = (~torch.isin(labels.cpu(), torch.tensor(sorted(set(targets))))).nonzero().flatten()
    else:
        pool = torch.arange(n)
    slices = _slices(pool, len(trigs), nb, multi, overlap, torch.Generator().manual_seed(stream_seed(seed, 0)))

    trigger_gen = torch.Generator().manual_seed(stream_seed(seed, 1))
    new_images, new_labels = images.clone(), labels.clone()
    ids = torch.full((n,), -1, dtype=torch.long)
    applied = torch.zeros(n, len(trigs), dtype=torch.bool)
    rounds = [list(range(len(trigs)))] if multi != "sequential" else [[k] for k in range(len(trigs))]
    for members in rounds:
        for k in members:
            ids[slices[k]] = k
            applied[slices[k], k] = True
        rows = torch.cat([slices[k] for k in members]).to(images.device)
        round_ids = ids[rows.cpu()].to(images.device)
        new_images[rows] = apply_stacked(new_images[rows], round_ids, trigs, trigger_gen)
        for k in members:
            idx = slices[k].to(images.device)
            if label_mode in ("all2one", "all2random"):
                new_labels[idx] = targets[k]
            elif label_mode == "all2all":
                new_labels[idx] = (labels[idx] + 1) % num_classes
    config = {"rate": float(rate), "per_trigger": nb, "target": int(target), "label_mode": label_mode,
              "multi": multi, "seed": int(seed), "num_classes": num_classes, "overlap": overlap,
              "exclude_target": bool(exclude_target), "n": n}
    return PoisonedDataset(new_images, new_labels, labels.clone(), ids.to(images.device), applied.to(images.device),
                           slices, trigs, targets, config)


def poison_test(images: torch.Tensor, labels: torch.Tensor, triggers, target: int = 0, label_mode: str = "all2one",
                seed: int = 0, num_classes: int | None = None) -> list[TensorDataset]:
    """One poisoned test set per trigger, all built from the same clean images: trigger k applied to every image
    whose class is not its target (all of them under all2all), labelled with the target (y+1 mod C under all2all).
    Targets follow `poison` with the same target, label_mode, seed and num_classes."""
    num_classes = _check_common(images, labels, None, target, label_mode, num_classes)
    trigs = as_triggers(triggers, seed)
    targets = trigger_targets(len(trigs), target, label_mode, num_classes, seed)
    gen = torch.Generator().manual_seed(stream_seed(seed, 3))
    sets = []
    for k, trig in enumerate(trigs):
        keep = torch.ones_like(labels, dtype=torch.bool) if targets[k] is None else labels != targets[k]
        x = images[keep]
        want = (labels[keep].long() + 1) % num_classes if targets[k] is None else torch.full_like(
            labels[keep].long(), targets[k])
        sets.append(TensorDataset(trig.apply(x, gen), want))
    return sets
