"""Clean and robust accuracy of a model under an attack, over a whole data set."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from robustfast._util.frozen import model_device


def robust_accuracy(model: torch.nn.Module, loader, attack, progress: bool = True) -> dict:
    """{"clean": accuracy, "robust": accuracy, "n": samples} over `loader` (an iterable of (images, labels)).

    A sample counts as robust when the model classifies both it and its adversarial version correctly.
    """
    device = model_device(model) or torch.device("cpu")
    was_training = model.training
    model.eval()
    clean = robust = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    bar = tqdm(loader, desc=f"robust accuracy ({attack!r})", disable=not progress, leave=False)
    try:
        for images, labels in bar:
            images, labels = images.to(device), labels.to(device)
            adv = attack(images, labels)
            with torch.no_grad():
                ok = model(images).argmax(1) == labels
                clean = clean + ok.sum()
                robust = robust + (ok & (model(adv).argmax(1) == labels)).sum()
            n += labels.numel()
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("loader yielded no samples")
    return {"clean": clean.item() / n, "robust": robust.item() / n, "n": n}
