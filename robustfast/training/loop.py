"""Supervised training and evaluation loops for image classifiers."""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from robustfast._util.checks import (
    check_dataset,
    check_finite_tensors,
    check_not_meta,
    get_key,
    is_int,
    is_real,
    require,
)
from robustfast._util.schedules import EPOCH_SCHEDULES, epoch_lr_factor
from robustfast._util.seeds import stream_generator
from robustfast.training.checkpoint import (
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)

SCHEDULES = EPOCH_SCHEDULES


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _resolve_device(model: nn.Module, device) -> torch.device:
    device = _model_device(model) if device is None else torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _batches(data: Dataset, order: torch.Tensor, batch_size: int):
    """(x, y) batches of `data` in `order`; TensorDatasets are sliced directly instead of item by item."""
    if isinstance(data, TensorDataset):
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield tuple(t[idx] for t in data.tensors[:2])
    else:
        yield from DataLoader(data, batch_size=batch_size, sampler=order.tolist())


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of an epoch, a function of (seed, epoch) alone, so a resumed run sees the same order."""
    return torch.randperm(n, generator=stream_generator(seed, epoch))


def train_classifier(model: nn.Module, train_set: Dataset, epochs: int, batch_size: int = 128,
                     lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4,
                     schedule: str = "cosine", augment=None, checkpoint_dir=None, seed: int = 0, device=None,
                     progress: bool = True, amp: bool = False, channels_last: bool = False,
                     grad_clip: float | None = None, loss=None) -> list[dict]:
    """Train `model` in place with SGD (no Nesterov) on `loss(logits, labels)`, cross-entropy by default (any
    robustfast.losses module, e.g. NCEandRCE(10), or a callable returning a scalar); return the per-epoch history.

    The history is a list of {"epoch", "loss", "acc", "lr", "seconds"} (train loss and accuracy over the
    epoch, lr at its start), including epochs restored from a checkpoint. `augment(x)` maps a batch already
    on `device` to an augmented batch. The shuffle order of each epoch depends only on (seed, epoch);
    augment and dropout draw from torch's global RNG, seeded with `seed` inside a fork so the caller's RNG
    is untouched.
    With `checkpoint_dir`, a checkpoint (model, optimizer, epoch, RNG state, history) is written after every
    epoch and a later call with the same directory resumes after the last finished epoch. The lr schedule is a
    function of the epoch (`robustfast._util.schedules.epoch_lr_factor`), so it needs no state of its own. `amp`
    runs forward passes under bf16 autocast; `grad_clip` clips the global gradient norm. `device` defaults to the
    model's device. The model is left in the train/eval mode it came in.
    """
    require("epochs", epochs, is_int(epochs) and epochs >= 1, "an int >= 1")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("momentum", momentum, is_real(momentum) and momentum >= 0, "a finite number >= 0")
    require("weight_decay", weight_decay, is_real(weight_decay) and weight_decay >= 0, "a finite number >= 0")
    require("schedule", schedule, schedule in SCHEDULES, f"one of {SCHEDULES}")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    require("grad_clip", grad_clip, grad_clip is None or (is_real(grad_clip) and grad_clip > 0),
           "None or a number > 0")
    require("augment", augment, augment is None or callable(augment), "None or a callable on a batch")
    check_dataset(train_set, "train_set")
    check_not_meta(model)
    label_max = _check_tensor_set(train_set, model, amp)
    require("loss", loss, loss is None or callable(loss), "None (cross-entropy) or a callable(logits, labels)")
    criterion = F.cross_entropy if loss is None else loss

    device = _resolve_device(model, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                          nesterov=False)
    settings = {"batch_size": int(batch_size), "lr": float(lr), "momentum": float(momentum),
                "weight_decay": float(weight_decay), "schedule": schedule, "seed": int(seed), "n": len(train_set),
                "grad_clip": None if grad_clip is None else float(grad_clip),
                "loss": "cross_entropy" if loss is None else repr(loss)}
    cuda = device.type == "cuda"
    was_training = model.training
    history: list[dict] = []
    start = 0
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.default_generators[device.index].manual_seed(seed)
        ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        if ckpt is not None:
            start, history = _restore(ckpt, model, opt, settings, epochs, device, checkpoint_dir)
        model.train()
        try:
            for epoch in range(start, epochs):
                record = _train_epoch(model, opt, train_set, epoch, epochs, settings, augment, device,
                                      progress, amp, channels_last, criterion, label_max)
                bad = record.pop("first_nonfinite_batch")
                if bad >= 0:  # checked once per epoch (the epoch's sums are read here anyway), before saving
                    kept = (f"the last good checkpoint (epoch {len(history)}) in {checkpoint_dir} is kept"
                            if checkpoint_dir is not None and history else "no checkpoint was written")
                    raise ValueError(
                        f"train_set: the loss became NaN or inf at epoch {epoch + 1}, batch {bad} (0-based, "
                        f"{settings['batch_size']} images per batch in the epoch's shuffled order); the model's "
                        f"weights are no longer finite and training stopped; {kept}. Check the data for NaN/inf "
                        "values and labels the loss cannot take, or lower lr")
                history.append(record)
                if checkpoint_dir is not None:
                    _save(checkpoint_dir, model, opt, settings, epochs, history, device)
        finally:
            model.train(was_training)
    return history


def _check_tensor_set(data, model: nn.Module, amp: bool) -> int | None:
    """For a TensorDataset, what can be checked at entry with one read of the values: float images of the
    model's dtype, finite; integer labels >= 0, one per image. Returns the largest label (compared with the
    model's number of outputs at the first batch), or None for other datasets."""
    if not isinstance(data, TensorDataset) or len(data.tensors) < 2:
        return None
    images, labels = data.tensors[:2]
    if images.is_meta or labels.is_meta:
        raise ValueError("train_set holds meta tensors (no data); load the images and labels first")
    if not images.is_floating_point():
        raise ValueError(f"train_set images must be a floating-point tensor (N×C×H×W in [0, 1]), got dtype "
                         f"{images.dtype}")
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None and not amp and images.dtype != param.dtype:
        raise ValueError(f"train_set images are {images.dtype} but the model's parameters are {param.dtype}; "
                         f"convert one of them (e.g. images.to({param.dtype}))")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or labels.dim() != 1:
        raise ValueError(f"train_set labels must be a 1-d integer tensor of class indices, got dtype {labels.dtype} "
                         f"and shape {tuple(labels.shape)}")
    finite = torch.isfinite(images.flatten(1) if images.dim() > 1 else images)
    if finite.dim() > 1:
        finite = finite.all(1)
    lo, hi, first_bad = labels.min(), labels.max(), (~finite).nonzero()[:1]
    if len(first_bad):
        raise ValueError(f"train_set images must be finite: image {int(first_bad)} contains NaN or inf")
    if int(lo) < 0:
        raise ValueError(f"train_set labels must be class indices >= 0, got a label {int(lo)}")
    return int(hi)


def _train_epoch(model, opt, data, epoch, epochs, settings, augment, device, progress, amp,
                 channels_last, criterion, label_max=None) -> dict:
    bs = settings["batch_size"]
    steps = math.ceil(settings["n"] / bs)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # the first batch with a non-finite loss
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    start_lr = settings["lr"] * epoch_lr_factor(settings["schedule"], epoch, epochs)
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=True)
    for i, (x, y) in enumerate(_batches(data, _epoch_order(settings["n"], settings["seed"], epoch), bs)):
        for g in opt.param_groups:
            g["lr"] = settings["lr"] * epoch_lr_factor(settings["schedule"], epoch + i / steps, epochs)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment is not None:
            x = augment(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = _forward(model, x, f"train_set: images of shape {tuple(x.shape)} and dtype {x.dtype} "
                                        f"(epoch {epoch + 1}, batch {i})")
        if i == 0 and label_max is not None and logits.dim() == 2 and label_max >= logits.shape[1]:
            raise ValueError(f"train_set labels must lie in [0, {logits.shape[1]}) for a model with "
                             f"{logits.shape[1]} outputs, got a label {label_max}")
        try:
            loss = criterion(logits.float(), y)
        except IndexError as err:  # cross-entropy on the CPU with a label out of range
            raise ValueError(f"train_set labels must lie in [0, {logits.shape[-1]}) (epoch {epoch + 1}, batch {i}): "
                             f"{err}") from None
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), i, first_bad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings["grad_clip"] is not None:
            nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        opt.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        bar.update()
        if (i + 1) % 50 == 0 or i + 1 == steps:  # reading the sums synchronises, so only now and then
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.4f}")
    bar.close()
    return {"epoch": epoch + 1, "loss": loss_sum.item() / seen, "acc": correct.item() / seen, "lr": start_lr,
            "seconds": time.perf_counter() - t0, "first_nonfinite_batch": int(first_bad.item())}


def _save(directory, model, opt, settings, epochs, history, device) -> None:
    tensors, opt_rest = optimizer_to_checkpoint(opt)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    state = {"epoch": len(history), "epochs": epochs, "settings": settings, "history": history,
             "optimizer": opt_rest}
    save_checkpoint(directory, tensors, state)


def _restore(ckpt, model, opt, settings, epochs, device, directory) -> tuple[int, list[dict]]:
    tensors, state = ckpt
    source = Path(directory) / "checkpoint.json"
    saved_settings = get_key(state, "settings", source, dict)
    done, saved_epochs = get_key(state, "epoch", source, int), get_key(state, "epochs", source, int)
    history = get_key(state, "history", source, list)
    get_key(state, "optimizer", source, dict)
    if not 1 <= done <= saved_epochs or len(history) != done:
        raise ValueError(f"{source}: key 'epoch' must lie in [1, epochs={saved_epochs}] and match the "
                         f"{len(history)} entries of 'history', got {done}; the checkpoint is corrupt")
    if done > epochs:
        raise ValueError(f"checkpoint_dir {directory} holds a run that finished {done} epochs, more than "
                         f"epochs={epochs}; pass epochs >= {done} to resume it or use a new checkpoint_dir")
    check_finite_tensors({k: v for k, v in tensors.items() if k.startswith("model.")},
                         f"checkpoint_dir {directory} (model weights)")
    get_key(tensors, "rng.cpu", f"checkpoint_dir {directory} (tensor file)")
    differ = {k: (saved_settings.get(k), v) for k, v in settings.items() if saved_settings.get(k) != v}
    if differ:
        raise ValueError(f"checkpoint_dir {directory} holds a run with other settings "
                         f"({', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in differ.items())}); "
                         "use the same settings to resume or a new checkpoint_dir")
    if state["epochs"] != epochs and settings["schedule"] != "constant" and state["epoch"] < epochs:
        warnings.warn(f"resuming a run of {state['epochs']} epochs as one of {epochs}: the finished epochs "
                      f"followed the {settings['schedule']} schedule for {state['epochs']}", stacklevel=3)
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_checkpoint(opt, tensors, state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"checkpoint_dir {directory}: the checkpoint does not fit this model and optimizer "
                         f"({' '.join(str(err).split())[:300]})") from None
    torch.set_rng_state(tensors["rng.cpu"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    return state["epoch"], state["history"]


def evaluate(model: nn.Module, data, batch_size: int = 512, device=None) -> float:
    """Top-1 accuracy in [0, 1] over a Dataset or DataLoader of (image, label), in eval mode without
    gradients; the model's train/eval mode is restored afterwards. `device` defaults to the model's device."""
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    if not isinstance(data, DataLoader):
        check_dataset(data, "data")
    device = _resolve_device(model, device)
    model.to(device)
    batches = data if isinstance(data, DataLoader) else _batches(data, torch.arange(len(data)), batch_size)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    try:
        with torch.no_grad():
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = _forward(model, x, f"data: images of shape {tuple(x.shape)} and dtype {x.dtype}")
                correct += (logits.argmax(1) == y).sum()
                total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("data is empty: evaluate needs at least one (image, label) pair")
    return correct.item() / total


def _forward(model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """model(x); a dtype, rank or channel count the model cannot take is a ValueError that starts with `what`."""
    try:
        return model(x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:
        raise ValueError(f"{what} do not fit the model: {' '.join(str(err).split())[:300]}") from None
