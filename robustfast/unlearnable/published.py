"""The error-minimizing noise search written the published way (HanxunH/Unlearnable-Examples, perturbation.py and
toolbox.py): the benchmark baseline and, on tiny cases, the parity oracle of robustfast.unlearnable.

It computes what the spec defines (unlearnable_examples.md §2-3) the way the published code does, patterns
kept on purpose because they are what robustfast replaces:
- the noise lives on the host; every phase builds each sample's noise as a NumPy mask, copies it to the
  device one sample at a time and writes η back one sample at a time; class-wise means go through a dict of lists;
- data batches are copied host → device every time they are used;
- the surrogate's `requires_grad` flags are toggled on every parameter for every batch; each perturbation step
  builds a new SGD optimizer over the image only to zero its gradient, zeroes the model's gradients and calls
  `loss.backward()` instead of taking the input gradient alone;
- every θ step reads its loss and accuracy on the host, as the published trainer logs them.
Batch orders come from robustfast.unlearnable.batches, so a run sees the same batches as the fast search.
The stop test is the spec's: the error over all samples of the noise set (the published meter averages
per-batch rates, which differs only through a short last batch).
"""
from __future__ import annotations

import collections

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustfast.unlearnable.batches import NOISE, THETA, BatchCycle, stratified_subset


def _endless(cycle: BatchCycle):
    epoch = 0
    while True:
        yield from cycle.epoch(epoch)
        epoch += 1


def _mask(noise_row: torch.Tensor, shape) -> torch.Tensor:
    """The published `_patch_noise_extend_to_img` for a full-image patch: a NumPy mask holding the noise."""
    mask = np.zeros(shape, np.float32)
    mask[:, 0:shape[1], 0:shape[2]] = noise_row.cpu().numpy()
    return torch.from_numpy(mask)


def _load(images, labels, idx, device):
    """A fresh device copy of a batch, as a DataLoader yields (slices of the host tensors are views)."""
    return images[idx].to(device, copy=True), labels[idx].to(device, copy=True)


def _set_requires_grad(model: nn.Module, flag: bool) -> None:
    for param in model.parameters():
        param.requires_grad = flag


def min_min_attack(model, images, labels, batch_noise, eps, step_size, steps):
    """toolbox.PerturbationTool.min_min_attack: returns (perturbed images, η of the last step)."""
    perturb_img = torch.clamp(images.data + batch_noise, 0, 1).requires_grad_(True)
    eta = batch_noise
    for _ in range(steps):
        opt = torch.optim.SGD([perturb_img], lr=1e-3)
        opt.zero_grad()
        model.zero_grad()
        loss = F.cross_entropy(model(perturb_img), labels)
        perturb_img.retain_grad()
        loss.backward()
        eta = step_size * perturb_img.grad.data.sign() * (-1)
        perturb_img = (perturb_img.data + eta).requires_grad_(True)
        eta = torch.clamp(perturb_img.data - images.data, -eps, eps)
        perturb_img = torch.clamp(images.data + eta, 0, 1).requires_grad_(True)
    return perturb_img, eta


def _train_batch(model, optimizer, images, labels, grad_clip):
    model.zero_grad()
    optimizer.zero_grad()
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    acc = (logits.argmax(1) == labels).float().mean().item()
    return {"loss": loss.item(), "acc": acc}


def _error(model, images, labels, noise, batches, device, row_of) -> float:
    wrong = total = 0
    for idx in batches:
        x, y = _load(images, labels, idx, device)
        rows = row_of(idx, y)
        for i in range(len(y)):
            x[i] = x[i] + _mask(noise[rows[i]], x[i].shape).to(device)
        with torch.no_grad():
            wrong += (model(x).argmax(1) != y).float().sum().item()
        total += len(y)
    return wrong / total


def _samplewise_round(model, optimizer, images, labels, noise, stream, batches, s, device):
    c, h, w = images.shape[1:]
    for _ in range(s["train_steps"]):
        idx = next(stream)
        x, y = _load(images, labels, idx, device)
        for i, sample in enumerate(range(idx.start, idx.stop)):
            x[i] = x[i] + _mask(noise[sample], (c, h, w)).to(device)
        model.train()
        _set_requires_grad(model, True)
        _train_batch(model, optimizer, x, y, s["grad_clip"])
    for idx in batches:
        x, y = _load(images, labels, idx, device)
        batch_noise = torch.stack([_mask(noise[sample], (c, h, w)) for sample in range(idx.start, idx.stop)])
        model.eval()
        _set_requires_grad(model, False)
        _, eta = min_min_attack(model, x, y, batch_noise.to(device), s["eps"], s["step_size"], s["steps"])
        for i, sample in enumerate(range(idx.start, idx.stop)):
            noise[sample] = eta[i].detach().cpu().clone()
    return _error(model, images, labels, noise, batches, device, lambda idx, y: list(range(idx.start, idx.stop)))


def _classwise_round(model, optimizer, images, labels, noise, stream, updates, tested, s, device):
    c, h, w = images.shape[1:]
    for _ in range(s["train_steps"]):
        idx = next(stream)
        x, y = _load(images, labels, idx, device)
        train_imgs = [x[i] + _mask(noise[y[i].item()], (c, h, w)).to(device) for i in range(len(y))]
        model.train()
        _set_requires_grad(model, True)
        _train_batch(model, optimizer, torch.stack(train_imgs), y, s["grad_clip"])
    for idx in updates:
        x, y = _load(images, labels, idx, device)
        batch_noise = torch.stack([_mask(noise[y[i].item()], (c, h, w)) for i in range(len(y))]).to(device)
        model.eval()
        _set_requires_grad(model, False)
        _, eta = min_min_attack(model, x, y, batch_noise, s["eps"], s["step_size"], s["steps"])
        per_class = collections.defaultdict(list)
        for i in range(len(eta)):
            per_class[y[i].item()].append(eta[i].detach().cpu())
        for k, etas in per_class.items():
            delta = torch.stack(etas).mean(dim=0) - noise[k]
            noise[k] = torch.clamp(noise[k] + delta, -s["eps"], s["eps"])
    return _error(model, images, labels, noise, tested, device, lambda idx, y: [v.item() for v in y])


def error_minimizing_noise_reference(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                                     kind: str = "samplewise", *, eps: float = 8 / 255, step_size: float = 0.8 / 255,
                                     steps: int | None = None, train_steps: int = 10, stop_error: float = 0.01,
                                     max_rounds: int = 30, batch_size: int = 512, lr: float = 0.1,
                                     momentum: float = 0.9, weight_decay: float = 5e-4, grad_clip: float | None = 5.0,
                                     subset_fraction: float = 0.2, seed: int = 0,
                                     device=None) -> tuple[torch.Tensor, list[float]]:
    """(noise on the host, the stop-test error after each round); the arguments mean what they mean in
    robustfast.unlearnable.error_minimizing_noise. `images` and `labels` may live on the host; batches are copied
    to `device` (default: the model's device) as the published loaders do."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images, labels = images.detach().cpu(), labels.long().cpu()
    steps = (20 if kind == "samplewise" else 1) if steps is None else steps
    s = {"eps": eps, "step_size": step_size, "steps": steps, "train_steps": train_steps, "grad_clip": grad_clip}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = images.shape[0]
    errors: list[float] = []
    if kind == "samplewise":
        noise = torch.zeros(images.shape)
        cycle = BatchCycle(n, batch_size, shuffle=False, drop_last=False)
        stream, batches = _endless(cycle), cycle.epoch(0)
        run = lambda r: _samplewise_round(model, optimizer, images, labels, noise, stream, batches, s, device)  # noqa: E731
    elif kind == "classwise":
        was_training = model.training
        model.eval()
        with torch.no_grad():
            num_classes = model(images[:1].to(device)).shape[1]
        model.train(was_training)
        noise = torch.zeros((num_classes, *images.shape[1:]))
        subset = stratified_subset(labels, subset_fraction, num_classes, seed)
        stream = _endless(BatchCycle(n, batch_size, shuffle=True, drop_last=True, seed=seed, stream=THETA))
        updates = BatchCycle(subset, batch_size, shuffle=True, drop_last=True, seed=seed, stream=NOISE)
        tested = BatchCycle(subset, batch_size, shuffle=False, drop_last=False).epoch(0)
        run = lambda r: _classwise_round(model, optimizer, images, labels, noise, stream, updates.epoch(r),  # noqa: E731
                                         tested, s, device)
    else:
        raise ValueError(f"kind must be 'samplewise' or 'classwise', got {kind!r}")
    while not errors or (errors[-1] >= stop_error and len(errors) < max_rounds):
        errors.append(run(len(errors)))
    return noise, errors
