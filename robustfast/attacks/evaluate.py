"""Clean and robust accuracy of a model under an attack, over a whole data set."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from robustfast._util.frozen import model_device


def robust_accuracy(model: torch.nn.Module, loader, attack, progress: bool = True) -> dict:
    """{"clean": accuracy, "robust": accuracy, "n": samples} over `loader` (an iterable of (images, labels)).

    A sample counts as robust when the model classifies both it and its adversarial version correctly.
    Bad input is a ValueError/TypeError naming it: a model that is not a Module, a `loader` that is not an
    iterable of (images, labels) batches, images whose dtype, rank or channels do not fit the model, labels
    outside the model's classes (one batched host read per batch).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if loader is None or isinstance(loader, (str, bytes, torch.Tensor)) or not hasattr(loader, "__iter__"):
        raise TypeError(f"loader must be an iterable of (images, labels) batches (e.g. a DataLoader), got "
                        f"{type(loader).__name__}")
    if not callable(attack):
        raise TypeError(f"attack must be callable as attack(images, labels), got {type(attack).__name__}")
    device = model_device(model) or torch.device("cpu")
    was_training = model.training
    model.eval()
    clean = robust = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    bar = tqdm(loader, desc=f"robust accuracy ({attack!r})", disable=not progress, leave=False)
    try:
        for i, batch in enumerate(bar):
            images, labels = _unpack(batch, i)
            images, labels = images.to(device), labels.to(device)
            with torch.no_grad():
                ok = _logits(model, images, i)
                _check_labels(labels, ok, i)
                ok = ok.argmax(1) == labels
            adv = attack(images, labels)
            with torch.no_grad():
                clean = clean + ok.sum()
                robust = robust + (ok & (model(adv).argmax(1) == labels)).sum()
            n += labels.numel()
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("loader yielded no samples")
    return {"clean": clean.item() / n, "robust": robust.item() / n, "n": n}


def _unpack(batch, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2
            and all(isinstance(t, torch.Tensor) for t in batch)):
        raise TypeError(f"loader must yield (images, labels) pairs of tensors; batch {i} is a "
                        f"{type(batch).__name__}")
    images, labels = batch
    if not images.is_floating_point():
        raise TypeError(f"loader: images must be a floating-point tensor, got dtype {images.dtype} (batch {i})")
    if images.dim() != 4:
        raise ValueError(f"loader: images must be N×C×H×W (rank 4), got shape {tuple(images.shape)} (batch {i})")
    if labels.dtype not in (torch.int64, torch.int32) or labels.shape != images.shape[:1]:
        raise ValueError(f"loader: labels must be ({images.shape[0]},) integer class indices, got shape "
                         f"{tuple(labels.shape)} and dtype {labels.dtype} (batch {i})")
    return images, labels


def _logits(model, images, i: int) -> torch.Tensor:
    try:
        return model(images)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:  # a dtype, rank or channel count the model cannot take
        raise ValueError(f"loader: images of shape {tuple(images.shape)} and dtype {images.dtype} (batch {i}) do "
                         f"not fit the model: {' '.join(str(err).split())[:300]}") from None


def _check_labels(labels, logits, i: int) -> None:
    if labels.numel() == 0 or logits.dim() != 2:
        return
    lo, hi = torch.stack([labels.min(), labels.max()]).tolist()
    if lo < 0 or hi >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}) for a model with {logits.shape[1]} outputs, "
                         f"got labels in [{lo}, {hi}] (batch {i})")


@torch.no_grad()
def transfer_asr(victim: torch.nn.Module, clean: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor) -> dict:
    """{"asr", "clean_acc", "adv_acc", "n"}: the attack success rate over the n images the victim classifies
    correctly when clean (the share of them it misclassifies after the attack), and both accuracies."""
    if clean.shape != adv.shape:
        raise ValueError(f"adv must have clean's shape {tuple(clean.shape)}, got {tuple(adv.shape)}")
    if labels.shape != clean.shape[:1]:
        raise ValueError(f"labels must have shape ({clean.shape[0]},), got {tuple(labels.shape)}")
    was = victim.training
    victim.eval()
    try:
        ok = victim(clean).argmax(1) == labels
        fooled = victim(adv).argmax(1) != labels
    finally:
        victim.train(was)
    n, hits, adv_ok = torch.stack([ok.sum(), (ok & fooled).sum(), (~fooled).sum()]).tolist()
    return {"asr": hits / max(n, 1), "clean_acc": n / len(labels), "adv_acc": adv_ok / len(labels), "n": n}
