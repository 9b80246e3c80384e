"""Backdoor-sample detection by Cognitive Distillation: scores for a dataset, AUROC / AP and the t = 0.5 rule
(specs/cognitive_distillation.md §3)."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch.utils.data import TensorDataset
from tqdm import tqdm

from robustfast._util.checks import is_int, require
from robustfast._util.frozen import model_device
from robustfast.backdoor.cd import CognitiveDistillation
from robustfast.backdoor.poison import PoisonedDataset

METHODS = ("cd",)
THRESHOLD = 0.5       # flag an image iff (μ − ‖m‖₁)/σ > t
CLEAN_SHARE = 0.1     # μ, σ from the first ⌊0.1·N⌋ clean training images, in index order


@dataclasses.dataclass
class DetectionReport:
    """l1: ‖m‖₁ per image. scores: 1 − minmax(l1) (high = likely backdoor). poison_mask: the truth, when known.
    auroc, ap (average precision, scikit-learn), tpr, fpr (the t = 0.5 rule, with mu and sigma from clean
    training scores): None without a poison mask."""

    l1: torch.Tensor
    scores: torch.Tensor
    poison_mask: torch.Tensor | None = None
    auroc: float | None = None
    ap: float | None = None
    tpr: float | None = None
    fpr: float | None = None
    mu: float | None = None
    sigma: float | None = None

    def clean_reference(self) -> torch.Tensor:
        """‖m‖₁ of the first ⌊0.1·N⌋ clean images in index order (the rule's μ and σ come from these)."""
        if self.poison_mask is None:
            raise ValueError("poison_mask: the clean reference needs the report of a set with a known poison mask")
        clean = self.l1[~self.poison_mask]
        return clean[:max(2, math.floor(CLEAN_SHARE * len(self.l1)))]

    def row(self) -> dict:
        return {"auroc": self.auroc, "ap": self.ap, "tpr": self.tpr, "fpr": self.fpr}


def _images_and_mask(dataset, poison_mask):
    if isinstance(dataset, torch.Tensor):
        images = dataset
    elif isinstance(dataset, TensorDataset):
        images = dataset.tensors[0]
    else:
        raise TypeError(f"dataset must be a tensor of images, a TensorDataset or a PoisonedDataset, got "
                        f"{type(dataset).__name__}")
    if poison_mask is None and isinstance(dataset, PoisonedDataset):
        poison_mask = dataset.trigger_ids >= 0
    if poison_mask is not None:
        if not isinstance(poison_mask, torch.Tensor) or poison_mask.dtype != torch.bool:
            raise ValueError("poison_mask must be a bool tensor, one entry per image")
        if poison_mask.shape != (len(images),):
            raise ValueError(f"poison_mask must have length {len(images)} (one entry per image), got shape "
                             f"{tuple(poison_mask.shape)}")
        poison_mask = poison_mask.cpu()
    return images, poison_mask


def detect(model, dataset, method: str = "cd", poison_mask: torch.Tensor | None = None, batch_size: int = 100,
           clean_scores: torch.Tensor | None = None, progress: bool = True, **cd_kwargs) -> DetectionReport:
    """Score every image of `dataset` (images N×C×H×W in [0, 1], a TensorDataset, or the PoisonedDataset that
    `poison` returns, whose poison mask is taken from it) with CognitiveDistillation(model, **cd_kwargs).

    With a poison mask: AUROC and average precision of the scores, and TPR/FPR of the rule "flag iff
    (μ − ‖m‖₁)/σ > 0.5", μ and σ (unbiased) from `clean_scores` (‖m‖₁ of clean training images, e.g. a training
    report's `clean_reference()`) or, when None, from the first ⌊0.1·N⌋ clean images of this dataset."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    images, poison_mask = _images_and_mask(dataset, poison_mask)
    cd = CognitiveDistillation(model, **cd_kwargs)
    device = model_device(model) or images.device
    l1 = []
    for start in tqdm(range(0, len(images), batch_size), desc="cognitive distillation", disable=not progress,
                      leave=False):
        l1.append(cd.score(images[start:start + batch_size].to(device), index=start).cpu())
    l1 = torch.cat(l1).double()
    span = (l1.max() - l1.min()).clamp(min=torch.finfo(torch.float64).tiny)
    report = DetectionReport(l1=l1, scores=1 - (l1 - l1.min()) / span, poison_mask=poison_mask)
    if poison_mask is None:
        return report
    from sklearn.metrics import average_precision_score, roc_auc_score

    truth = poison_mask.numpy()
    if truth.all() or not truth.any():
        raise ValueError("poison_mask must mark some images, not all: AUROC needs both classes")
    report.auroc = float(roc_auc_score(truth, report.scores.numpy()))
    report.ap = float(average_precision_score(truth, report.scores.numpy()))
    ref = report.clean_reference() if clean_scores is None else torch.as_tensor(clean_scores).double().cpu()
    report.mu, report.sigma = float(ref.mean()), float(ref.std())
    flagged = (report.mu - l1) / max(report.sigma, 1e-12) > THRESHOLD
    report.tpr = float(flagged[poison_mask].double().mean())
    report.fpr = float(flagged[~poison_mask].double().mean())
    return report


def backdoor_test_set(images: torch.Tensor, labels: torch.Tensor, trigger, rate: float, target: int = 0,
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's backdoor test set: the test images with the trigger applied to ⌊rate·N⌋ randomly drawn images
    whose class is not `target`. Returns (images, poison_mask)."""
    from robustfast._util.seeds import stream_generator
    from robustfast.backdoor.poison import as_triggers

    require("rate", rate, isinstance(rate, float | int) and 0 < rate <= 1, "a share in (0, 1]")
    (trig,) = as_triggers([trigger], seed)
    pool = (labels.cpu() != target).nonzero().flatten()
    count = min(len(pool), max(1, math.floor(rate * len(images) + 1e-9)))
    gen = stream_generator(seed, 14)
    chosen = pool[torch.randperm(len(pool), generator=gen)[:count]].sort().values
    out = images.clone()
    out[chosen.to(images.device)] = trig.apply(images[chosen.to(images.device)], gen)
    mask = torch.zeros(len(images), dtype=torch.bool)
    mask[chosen] = True
    return out, mask
