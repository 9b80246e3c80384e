"""Batches, seeded image augmentation and one-pass evaluation (accuracy, prediction histogram) for the exposure
methods. Inputs are any tensors a model takes (images, token ids): nothing here assumes an image except
`crop_flip`, which the image-specific callers pass as `augment`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from robustfast._util.seeds import stream_generator


def as_tensors(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a Dataset of (input, label) pairs, stacked once; a ValueError naming `name` if it is
    not such a dataset or is empty."""
    if not isinstance(data, Dataset):
        raise ValueError(f"{name} must be a torch Dataset of (input, label) pairs, got {type(data).__name__}")
    try:
        n = len(data)
    except TypeError:
        raise ValueError(f"{name} must have a length (a map-style Dataset)") from None
    if n == 0:
        raise ValueError(f"{name} is empty: give at least one (input, label) pair")
    if isinstance(data, TensorDataset) and len(data.tensors) >= 2:
        x, y = data.tensors[:2]
    else:
        x, y = zip(*(data[i][:2] for i in range(n)), strict=True)
        x, y = torch.stack([torch.as_tensor(v) for v in x]), torch.as_tensor(y)
    if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"{name} labels must be integer class indices, one per input; got dtype {y.dtype}, "
                         f"shape {tuple(y.shape)}")
    if len(y) != len(x):
        raise ValueError(f"{name} must hold one label per input, got {len(x)} inputs and {len(y)} labels")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} inputs contain NaN or inf")
    if bool((y < 0).any()):
        raise ValueError(f"{name} labels must be class indices >= 0, got {int(y.min())}")
    return x, y.long()


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True) -> list[torch.Tensor]:
    """Index batches of an epoch; the order depends on (seed, epoch) only."""
    order = torch.randperm(n, generator=stream_generator(seed, 11, epoch)) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding then horizontal flip, per image, drawn from `generator` (CPU): the
    reference's defense-set augmentation, vectorised."""
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    padded = F.pad(x, (padding,) * 4)
    rows = (dy[:, None] + torch.arange(h)).to(x.device)
    cols = (dx[:, None] + torch.arange(w)).to(x.device)
    cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)
    idx = torch.arange(n, device=x.device)[:, None, None, None]
    ch = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[idx, ch, rows[:, None, :, None], cols[:, None, None, :]]


def predictions(model: nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Argmax predictions of `model` in eval mode, without gradients (mode restored)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(inputs[i:i + batch_size].to(device)).argmax(1)
                              for i in range(0, len(inputs), batch_size)])
    finally:
        model.train(was_training)


def histogram(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """h(c): the share of predictions in class c (float64, sums to 1), one bincount."""
    return torch.bincount(pred, minlength=num_classes)[:num_classes].double() / max(len(pred), 1)


def snapshot(model: nn.Module, inputs, labels, num_classes: int, asr_set=None) -> dict:
    """Accuracy and prediction histogram on (inputs, labels), and ASR (share predicted as the label) on asr_set."""
    pred = predictions(model, inputs)
    row = {"acc": (pred.cpu() == labels).double().mean().item(), "hist": histogram(pred.cpu(), num_classes)}
    if asr_set is not None:
        ax, ay = asr_set
        row["asr"] = (predictions(model, ax).cpu() == ay).double().mean().item()
    return row
