"""Model detection from an exposed model (specs/ebyd.md §3): run CUL with the SGD recipe, take the prediction
histogram h on a clean evaluation set and its population variance s = (1/C) Σ_c (h(c) − 1/C)²; the model is
backdoored iff s > threshold (0.01: one class holding more than 40 % of the predictions, for C = 10).

`detect_models` runs the same recipe on many models at once when they share an architecture: their parameters
and buffers are stacked (torch.func.stack_module_state) and one vmapped functional call serves all of them per
batch; elementwise optimizers (SGD, Adam) on the stacked tensors are exactly the per-model optimizers. Otherwise,
or with vmap=False, it loops over the models.

`calibrate_detection` scales the recipe's strength to the model at hand, on clean reference models only: the
spec's lr 0.005 was tuned for ResNet-18 on CIFAR-10, and a smaller model unlearns so fast that clean models
collapse onto one class too (a SmallCNN-8 on digits: every clean model scores > 0.01 at lr 0.005). It walks an
lr grid from the strongest down and keeps the first lr at which every reference clean model (trained by the
defender with the suspect models' recipe, never one of the models under test) stays at or under the threshold.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustfast._util.checks import is_int, is_real, require
from robustfast._util.seeds import stream_generator
from robustfast._util.tables import table
from robustfast.backdoor.expose import expose, lr_at, make_optimizer
from robustfast.backdoor.expose_data import as_tensors, epoch_batches, histogram

DETECT_CUL = {"epochs": 20, "lr": 0.005, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64,
              "optimizer": "sgd", "milestones": (10, 20)}
THRESHOLD = 0.01
CALIBRATION_LRS = (5e-3, 2e-3, 1e-3, 5e-4, 4e-4, 3e-4, 2e-4, 1e-4)


@dataclasses.dataclass
class ModelDetection:
    score: float            # s, the population variance of h
    backdoored: bool        # s > threshold
    label: int              # argmax h: the suspected target
    hist: torch.Tensor      # h on the evaluation set


def variance_score(hist: torch.Tensor) -> float:
    """s = (1/C) Σ_c (h(c) − 1/C)²."""
    return ((hist - 1.0 / len(hist)) ** 2).mean().item()


def _verdict(hist: torch.Tensor, threshold: float) -> ModelDetection:
    score = variance_score(hist)
    return ModelDetection(score, score > threshold, int(hist.argmax()), hist)


def _check(threshold, cul: dict) -> dict:
    require("threshold", threshold, is_real(threshold) and threshold >= 0, "a finite number >= 0")
    unknown = set(cul) - set(DETECT_CUL)
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]} is not a CUL option of model detection; options: "
                         f"{', '.join(DETECT_CUL)}")
    return {**DETECT_CUL, **cul}


def detect_model(model: nn.Module, clean_set, eval_set, *, threshold: float = THRESHOLD, augment=None,
                 seed: int = 0, **cul) -> ModelDetection:
    """Expose `model` by CUL with the detection recipe (SGD lr 0.005, momentum 0.9, wd 5e-4, ×0.1 at epochs 10
    and 20, 20 epochs, batch 64; override any of DETECT_CUL) on `clean_set`, then score h on `eval_set`."""
    opts = _check(threshold, cul)
    exp = expose(model, clean_set, "cul", seed=seed, eval_set=eval_set, augment=augment, **opts)
    return _verdict(exp.hist, threshold)


def _same_architecture(models) -> bool:
    first = models[0].state_dict()
    return all(type(m) is type(models[0]) and m.state_dict().keys() == first.keys()
               and all(v.shape == first[k].shape for k, v in m.state_dict().items()) for m in models[1:])


def detect_models(models, clean_set, eval_set, *, threshold: float = THRESHOLD, augment=None, seed: int = 0,
                  vmap: bool = True, progress: bool = False, **cul) -> list[ModelDetection]:
    """detect_model for every model of `models` (same data, batches and augmentation for all), vmapped over
    stacked weights when the models share one architecture (and vmap=True), else one after another."""
    opts = _check(threshold, cul)
    require("models", models, isinstance(models, (list, tuple)) and len(models) > 0
            and all(isinstance(m, nn.Module) for m in models), "a non-empty list of nn.Module")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    if not vmap or len(models) == 1 or not _same_architecture(models):
        return [detect_model(m, clean_set, eval_set, threshold=threshold, augment=augment, seed=seed, **cul)
                for m in tqdm(models, desc="detect", disable=not progress)]
    x, y = as_tensors(clean_set, "clean_set")
    ex, _ = as_tensors(eval_set, "eval_set")
    return [_verdict(h, threshold) for h in _stacked_cul(models, x, y, ex, opts, augment, seed, progress)]


@dataclasses.dataclass
class Calibration:
    lr: float | None          # the strongest lr of the grid at which every reference model scores <= threshold
    scores: dict[float, list[float]]  # lr -> the reference models' scores, for every lr tried (strongest first)
    threshold: float

    def table(self) -> str:
        rows = [{"lr": lr, "max ref score": max(v), "ref scores": " ".join(f"{s:.4f}" for s in v),
                 "chosen": "<-" if lr == self.lr else ""} for lr, v in self.scores.items()]
        return table(rows, list(rows[0]))


def calibrate_detection(reference_models, clean_set, eval_set, *, lrs=CALIBRATION_LRS,
                        threshold: float = THRESHOLD, augment=None, seed: int = 0, progress: bool = False,
                        **cul) -> Calibration:
    """The strongest CUL learning rate of `lrs` (tried from the largest down, stopping at the first that passes)
    at which every model of `reference_models` (clean models of the suspects' architecture and training recipe,
    held by the defender; never the models under test) scores <= threshold; the rest of the recipe as
    detect_models (override with **cul, except lr). lr None when no rate passes. Use the result as
    detect_models(models, ..., lr=calibration.lr)."""
    require("lrs", lrs, isinstance(lrs, (list, tuple)) and len(lrs) > 0
            and all(is_real(v) and v > 0 for v in lrs), "a non-empty list of numbers > 0")
    if "lr" in cul:
        raise ValueError("lr is what calibrate_detection chooses; give the grid as lrs=")
    _check(threshold, cul)
    scores = {}
    for lr in sorted((float(v) for v in lrs), reverse=True):
        res = detect_models(list(reference_models), clean_set, eval_set, threshold=threshold, augment=augment,
                            seed=seed, progress=progress, lr=lr, **cul)
        scores[lr] = [r.score for r in res]
        if not any(r.backdoored for r in res):
            return Calibration(lr, scores, threshold)
    return Calibration(None, scores, threshold)


def _stacked_cul(models, x, y, ex, opts, augment, seed, progress) -> list[torch.Tensor]:
    """CUL on M same-shaped models at once; returns each model's h on ex after the last epoch."""
    device = next(models[0].parameters()).device
    params, buffers = torch.func.stack_module_state([copy.deepcopy(m) for m in models])
    base = copy.deepcopy(models[0]).to("meta")
    params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    opt = make_optimizer(list(params.values()), opts)

    def call(p, b, xb):
        return torch.func.functional_call(base, (p, b), (xb,))

    def losses(p, b, xb, yb):
        return F.cross_entropy(call(p, b, xb), yb)

    base.train()
    for epoch in tqdm(range(opts["epochs"]), desc="cul x models", disable=not progress):
        for g in opt.param_groups:
            g["lr"] = lr_at(opts, epoch)
        aug = stream_generator(seed, 12, epoch)
        for idx in epoch_batches(len(y), opts["batch_size"], seed, epoch):
            xb, yb = x[idx].to(device), y[idx].to(device)
            if augment is not None:
                xb = augment(xb, aug)
            loss = -torch.vmap(losses, in_dims=(0, 0, None, None), randomness="same")(params, buffers, xb, yb).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    base.eval()
    num_classes = None
    preds = []
    with torch.no_grad():
        for i in range(0, len(ex), 512):
            logits = torch.vmap(call, in_dims=(0, 0, None))(params, buffers, ex[i:i + 512].to(device))
            num_classes = logits.shape[-1]
            preds.append(logits.argmax(-1))
    preds = torch.cat(preds, 1).cpu()
    return [histogram(p, num_classes) for p in preds]
