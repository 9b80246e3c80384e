"""Clean accuracy, attack success rate per trigger and cross-activation, in one pass (specs/multi_trigger.md §4).

The clean test images and, per trigger k, the same images minus trigger k's target class form one stream with a
trigger-id vector (−1 for clean). Each chunk is poisoned by the fused op and classified once; a single bincount
over (id + 1)·C + prediction gives every count: CA, every ASR_k, the (T+1)×C matrix Q (row 0 clean, row k + 1
trigger k: the share of its images predicted as each class; rows sum to 1) and the T×T matrix
P[k, j] = Q[k + 1, t_j], the share of trigger k's images sent to trigger j's target (diagonal: ASR).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from robustfast._util.checks import is_int, require
from robustfast._util.seeds import stream_seed
from robustfast.backdoor.poison import _check_common, as_triggers, trigger_targets
from robustfast.backdoor.stack import apply_stacked
from robustfast._util.tables import table


@dataclasses.dataclass
class BackdoorReport:
    names: list[str]
    targets: list[int | None]
    clean_acc: float
    asr: list[float]
    cross: torch.Tensor  # (T + 1, C): row 0 clean, row k + 1 trigger k
    pairwise: torch.Tensor | None  # (T, T), None under all2all
    counts: torch.Tensor  # (T + 1, C) prediction counts behind `cross`

    def asr_table(self) -> str:
        rows = [{"trigger": "clean", "target": "-", "n": int(self.counts[0].sum()), "acc / ASR": self.clean_acc}]
        for k, (name, t, a) in enumerate(zip(self.names, self.targets, self.asr, strict=True)):
            rows.append({"trigger": name, "target": "y+1" if t is None else t, "n": int(self.counts[k + 1].sum()),
                         "acc / ASR": a})
        return table(rows, ["trigger", "target", "n", "acc / ASR"])

    def cross_table(self) -> str:
        classes = self.cross.shape[1]
        rows = [{"images": name, **{str(c): float(self.cross[r, c]) for c in range(classes)}}
                for r, name in enumerate(["clean", *self.names])]
        return table(rows, ["images", *map(str, range(classes))])


def _tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, TensorDataset):
        return data.tensors[0], data.tensors[1]
    if isinstance(data, Dataset):
        xs, ys = zip(*(data[i] for i in range(len(data))), strict=True)
        return torch.stack(xs), torch.as_tensor(ys)
    raise TypeError(f"clean_test must be a Dataset of (image, label), got {type(data).__name__}")


def evaluate(model: nn.Module, clean_test, triggers, target: int = 0, label_mode: str = "all2one",
             num_classes: int | None = None, seed: int = 0, batch_size: int = 512, device=None,
             targets: list[int | None] | None = None) -> BackdoorReport:
    """Evaluate `model` on clean test data and on every trigger (names, Trigger objects, or a PoisonedDataset's
    `triggers`), with targets as `poison` assigns them for the same target, label_mode and seed, or as given in
    `targets` (one class per trigger; None for y+1 mod C), e.g. a PoisonedDataset's `targets`."""
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    images, labels = _tensors(clean_test)
    num_classes = _check_common(images, labels, None, target, label_mode, num_classes)
    trigs = as_triggers(triggers, seed)
    if targets is None:
        targets = trigger_targets(len(trigs), target, label_mode, num_classes, seed)
    elif len(targets) != len(trigs) or any(t is not None and not 0 <= t < num_classes for t in targets):
        raise ValueError(f"targets must give one class in [0, {num_classes}) (or None) per trigger: "
                         f"{len(trigs)} triggers, got {targets!r}")
    labels = labels.long()
    base = [torch.arange(len(labels))]
    ids = [torch.full((len(labels),), -1)]
    for k, t in enumerate(targets):
        keep = torch.arange(len(labels)) if t is None else (labels.cpu() != t).nonzero().flatten()
        base.append(keep)
        ids.append(torch.full((len(keep),), k))
    base, ids = torch.cat(base), torch.cat(ids)
    want = labels.cpu()[base].clone()
    for k, t in enumerate(targets):
        rows = ids == k
        want[rows] = (want[rows] + 1) % num_classes if t is None else t

    device = torch.device(device) if device is not None else next(model.parameters()).device
    gen = torch.Generator().manual_seed(stream_seed(seed, 3))
    counts = torch.zeros((len(trigs) + 1) * num_classes, dtype=torch.long, device=device)
    hits = torch.zeros(len(trigs) + 1, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(base), batch_size):
                chunk_ids = ids[i:i + batch_size]
                x = apply_stacked(images[base[i:i + batch_size]], chunk_ids.to(images.device), trigs, gen)
                pred = model(x.to(device)).argmax(1)
                row = chunk_ids.to(device) + 1
                counts += torch.bincount(row * num_classes + pred, minlength=counts.numel())
                hits += torch.bincount(row, weights=(pred == want[i:i + batch_size].to(device)).double(),
                                       minlength=len(hits)).long()
    finally:
        model.train(was_training)
    counts = counts.view(len(trigs) + 1, num_classes).cpu()
    totals = counts.sum(1)
    rates = (hits.cpu().double() / totals.clamp(min=1)).tolist()
    cross = counts.double() / totals.clamp(min=1).unsqueeze(1)
    pairwise = None
    if all(t is not None for t in targets):
        pairwise = cross[1:][:, torch.tensor(targets)]
    return BackdoorReport(names=[t.name for t in trigs], targets=targets, clean_acc=rates[0], asr=rates[1:],
                          cross=cross, pairwise=pairwise, counts=counts)
