"""Neural Cleanse trigger recovery (specs/ebyd.md §3), run on an exposed or an original image classifier.

For every class k a mask m_k ∈ [0,1]^{H×W} and a pattern p_k ∈ [0,1]^{C×H×W} minimise
CE(f((1 − m_k)⊙x + m_k⊙p_k), k) + cost·‖m_k‖₁ (Adam, clamped to [0, 1] after every step, no tanh). All classes
are optimised together: each step stamps one batch of B images with all K triggers in one nc_stamp call and runs
one forward of K·B images. The classes do not interact (the summed loss gives each (m_k, p_k) its own gradient,
Adam is elementwise and the model is in eval mode), so the result equals running the classes one by one with the
same seed: `classes=[k]` runs one class, with the same batches and initialisation as in the joint run.
Outlier test: MAD = 1.4826·median|L_k − median L| over the norms L_k = ‖m_k‖₁; anomaly index |L_k − median L|/MAD;
flagged: index > 2 and L_k < median L.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robustfast._util.checks import check_images, is_int, is_real, require
from robustfast._util.frozen import frozen_eval
from robustfast._util.seeds import stream_generator
from robustfast._util.tables import table
from robustfast.backdoor.expose_data import as_tensors, epoch_batches
from robustfast.ops import nc_stamp


@dataclasses.dataclass
class CleanseResult:
    classes: list[int]
    masks: torch.Tensor     # (K, H, W)
    patterns: torch.Tensor  # (K, C, H, W)
    norms: torch.Tensor     # L_k = ‖m_k‖₁, (K,)
    anomaly: torch.Tensor   # anomaly index per class, (K,)
    flagged: list[int]      # classes with index > 2 and L_k < median L

    def table(self) -> str:
        rows = [{"class": k, "|m|_1": self.norms[i].item(), "anomaly index": self.anomaly[i].item(),
                 "flagged": k in self.flagged} for i, k in enumerate(self.classes)]
        return table(rows, ["class", "|m|_1", "anomaly index", "flagged"])


def anomaly_index(norms: torch.Tensor) -> torch.Tensor:
    """|L_k − median L| / (1.4826·median|L − median L|) (torch.median: the lower middle value for even K)."""
    med = norms.median()
    mad = 1.4826 * (norms - med).abs().median()
    return (norms - med).abs() / mad.clamp(min=1e-12)


def neural_cleanse(model: nn.Module, data, *, classes=None, epochs: int = 20, batch_size: int = 64,
                   lr: float = 0.005, cost: float = 0.01, seed: int = 0, progress: bool = False) -> CleanseResult:
    """Recover one trigger per class of `model` (an image classifier taking N×C×H×W in [0, 1]) from `data`, a
    Dataset of clean (image, label) pairs (the spec takes 50 test images per class). `classes` (default all)
    picks the target classes optimised together."""
    require("epochs", epochs, is_int(epochs) and epochs >= 1, "an int >= 1")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("cost", cost, is_real(cost) and cost >= 0, "a finite number >= 0")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    x, _ = as_tensors(data, "data")
    check_images(x, "data images")
    if x.dim() != 4:
        raise ValueError(f"data images must be N×C×H×W, got shape {tuple(x.shape)}")
    device = next(model.parameters()).device
    with torch.no_grad(), frozen_eval(model):
        num_classes = model(x[:1].to(device)).shape[-1]
    if classes is None:
        classes = list(range(num_classes))
    require("classes", classes, isinstance(classes, (list, tuple)) and len(classes) > 0
            and all(is_int(k) and 0 <= k < num_classes for k in classes), f"a non-empty list of classes in "
            f"[0, {num_classes})")
    classes = [int(k) for k in classes]
    _, c, h, w = x.shape
    dtype = next(model.parameters()).dtype
    inits = [(torch.rand(h, w, generator=stream_generator(seed, 21, k)),
              torch.rand(c, h, w, generator=stream_generator(seed, 22, k))) for k in classes]
    mask = torch.stack([m for m, _ in inits]).to(device, dtype).requires_grad_(True)
    pattern = torch.stack([p for _, p in inits]).to(device, dtype).requires_grad_(True)
    opt = torch.optim.Adam([mask, pattern], lr=lr)
    targets = torch.tensor(classes, device=device)
    with frozen_eval(model):
        for epoch in tqdm(range(epochs), desc="neural cleanse", disable=not progress):
            for idx in epoch_batches(len(x), batch_size, seed, epoch):
                xb = x[idx].to(device, dtype)
                logits = model(nc_stamp(xb, mask, pattern))
                ce = F.cross_entropy(logits, targets.repeat_interleave(len(idx)), reduction="none")
                loss = ce.view(len(classes), len(idx)).mean(1).sum() + cost * mask.abs().sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    mask.clamp_(0, 1)
                    pattern.clamp_(0, 1)
    mask, pattern = mask.detach(), pattern.detach()
    norms = mask.flatten(1).sum(1).double().cpu()
    index = anomaly_index(norms)
    med = norms.median()
    flagged = [k for k, a, n in zip(classes, index.tolist(), norms.tolist(), strict=True) if a > 2 and n < med]
    return CleanseResult(classes, mask.cpu(), pattern.cpu(), norms, index, flagged)
