"""Adversarial training: PGD-AT (Madry), TRADES, MART and FGSM-RS, with the robust_wrn spec's recipes (§2).

Data-parallel on torch.distributed, one code path for 1..n ranks: launched under `torchrun` (the process group
initialised by the caller), each rank takes its share of every global batch, runs the attack and the loss on it,
and the gradients are summed across ranks with all_reduce after weighting each rank's mean by its share, so the
step is the one-rank step on the global batch. (DistributedDataParallel's hooks do the same all_reduce; the
explicit one lets the attack's forwards and TRADES's two training forwards run without DDP's bookkeeping.)
BatchNorm statistics are per rank, as under DDP; rank 0's buffers are broadcast after every epoch.
"""
from __future__ import annotations

import copy
import math
import time
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from robustfast._util.checks import get_key, is_int, is_real, require
from robustfast._util.frozen import frozen_eval
from robustfast._util.seeds import stream_generator, stream_seed
from robustfast.ops import adv_loss
from robustfast.training.adv_attacks import METHODS, pgd20_correct, start_noise, training_attack
from robustfast.training.checkpoint import (
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)

SCHEDULES = ("piecewise", "cosine")


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Per-epoch lr multiplier (epoch 0-based). piecewise: ×0.1 from 75% and ×0.01 from 90% of the epochs (epochs
    75 and 90 of 100, the reference's hard-coded rule); cosine: ½(1 + cos(π·epoch/epochs)) (the RST rule, whose
    1-based e − 1 is this 0-based epoch)."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    return 0.01 if epoch >= 0.9 * epochs else 0.1 if epoch >= 0.75 * epochs else 1.0


def crop_flip(x: torch.Tensor, draws: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip per image; `draws` (N, 3) uniform in [0, 1) pick the
    offsets and the flip."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy, ox = ((draws[:, :2] * (2 * pad + 1)).long().clamp(max=2 * pad)).unbind(1)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, w + 2 * pad)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
    out = xp.gather(2, rows).gather(3, cols)
    flip = draws[:, 2] < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_image_set(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of a TensorDataset of float N×C×H×W images in [0, 1] and integer labels (one host read)."""
    if not isinstance(data, TensorDataset) or len(data.tensors) < 2:
        raise ValueError(f"{name} must be a TensorDataset of (images, labels), got {type(data).__name__}")
    images, labels = data.tensors[:2]
    if not images.is_floating_point() or images.dim() != 4:
        raise ValueError(f"{name} images must be a float N×C×H×W tensor, got dtype {images.dtype} and shape "
                         f"{tuple(images.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (images.shape[0],):
        raise ValueError(f"{name} labels must be {images.shape[0]} integer class indices, got dtype {labels.dtype} "
                         f"and shape {tuple(labels.shape)}")
    if len(images) == 0:
        raise ValueError(f"{name} is empty")
    lo, hi, lab_lo = torch.stack([images.min(), images.max(), labels.min().to(images.dtype)]).tolist()
    if not (lo >= 0.0 and hi <= 1.0):  # NaN fails too
        raise ValueError(f"{name} images must lie in [0, 1] (normalise inside the model), got [{lo:g}, {hi:g}]")
    if lab_lo < 0:
        raise ValueError(f"{name} labels must be class indices >= 0")
    return images, labels.long()


def _check_args(method, eps, alpha, steps, beta, epochs, batch_size, lr, schedule, weight_decay, grad_clip, ema,
                val_split, seed, world_size):
    require("method", method, method in METHODS, f"one of {METHODS}")
    require("eps", eps, is_real(eps) and eps >= 0, "a finite number >= 0")
    require("alpha", alpha, alpha is None or (is_real(alpha) and alpha >= 0), "None or a finite number >= 0")
    require("steps", steps, is_int(steps) and steps >= 1, "an int >= 1")
    require("beta", beta, is_real(beta) and beta >= 0, "a finite number >= 0")
    require("epochs", epochs, is_int(epochs) and epochs >= 1, "an int >= 1")
    require("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("schedule", schedule, schedule in SCHEDULES, f"one of {SCHEDULES}")
    require("weight_decay", weight_decay, is_real(weight_decay) and weight_decay >= 0, "a finite number >= 0")
    require("grad_clip", grad_clip, grad_clip is None or (is_real(grad_clip) and grad_clip > 0),
            "None or a number > 0")
    require("ema", ema, ema is None or (is_real(ema) and 0 < ema < 1), "None or a decay in (0, 1)")
    require("val_split", val_split, is_int(val_split) and val_split >= 0, "an int >= 0")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} must be divisible by the world size {world_size} (each rank takes "
                         "an equal share of every global batch)")


def _all_reduce_(tensors: list[torch.Tensor], world_size: int) -> None:
    if world_size > 1 and tensors:
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
            t.copy_(part.view_as(t))


def _broadcast_(tensors, world_size: int) -> None:
    if world_size > 1:
        for t in tensors:
            dist.broadcast(t, 0)


def train_adversarial(model: nn.Module, dataset, method: str = "pgd-at", *, eps: float = 8 / 255,
                      alpha: float | None = None, steps: int = 10, beta: float = 6.0, epochs: int = 100,
                      batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9, schedule: str = "piecewise",
                      weight_decay: float = 2e-4, grad_clip: float | None = 5.0, ema: float | None = None,
                      augment: bool = True, amp: bool = False, channels_last: bool = False, compile: bool = False,
                      val_split: int = 1000, select_on_test_set=None, checkpoint_dir=None, seed: int = 0,
                      device=None, progress: bool = True) -> dict:
    """Train `model` in place with `method` ("pgd-at", "trades", "mart", "fgsm-rs") on `dataset`, a TensorDataset
    of N×C×H×W images in [0, 1] and labels. Defaults are the spec's CIFAR-10 recipe: SGD 0.1, momentum 0.9,
    wd 2e-4, 100 epochs, batch 128 (global, over all ranks), the piecewise lr rule, grad-norm clip 5, ε = 8/255,
    α = 2/255 (1.25·ε for fgsm-rs), 10 steps (1 for fgsm-rs), β = 6 (TRADES, MART). The attack runs in eval mode with
    the weights frozen; the loss in train mode (TRADES/MART through the fused `adv_loss` op).

    Selection: `val_split` images of the training set (a seeded draw) are held out; from epoch E/2 on, PGD-20 on
    them picks the best epoch, whose weights the model ends with. `val_split=0` keeps the last epoch.
    `select_on_test_set=<TensorDataset>` is the reference repository's rule (PGD-20 on the *test* set: model
    selection on test data), for parity with published numbers only; it trains on the whole training set.
    `ema=<decay>` keeps an exponential moving average of the weights (and buffers), which is what selection
    evaluates and what the model ends with. `augment`: random crop (pad 4) and flip. `amp`: bf16 autocast for the
    attack and the loss. Resumable per epoch with `checkpoint_dir` (model, optimizer, EMA, best weights, RNG; the
    data order is a function of (seed, epoch)). Returns {"history": per-epoch records, "selected_epoch",
    "selected_by"}.
    """
    rank, world_size = world()
    _check_args(method, eps, alpha, steps, beta, epochs, batch_size, lr, schedule, weight_decay, grad_clip, ema,
                val_split, seed, world_size)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    images, labels = check_image_set(dataset, "dataset")
    alpha = (1.25 * eps if method == "fgsm-rs" else 2 / 255) if alpha is None else float(alpha)
    test_images = test_labels = None
    if select_on_test_set is not None:
        test_images, test_labels = check_image_set(select_on_test_set, "select_on_test_set")
        warnings.warn("select_on_test_set: selecting the checkpoint by PGD-20 on the test set (the reference "
                      "repository's rule) is model selection on test data", stacklevel=2)
        val_split = 0
    if val_split >= len(images):
        raise ValueError(f"val_split must be smaller than the dataset ({len(images)} images), got {val_split}")
    split = torch.randperm(len(images), generator=stream_generator(seed, 1_000_001))
    val_idx, train_idx = split[:val_split], split[val_split:]
    sel_images, sel_labels = (images[val_idx], labels[val_idx]) if val_split else (test_images, test_labels)
    selected_by = ("last epoch" if sel_images is None else f"PGD-20 on {len(sel_images)} held-out training images"
                   if val_split else "PGD-20 on the test set (reference rule: model selection on test data)")

    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    ema_model = copy.deepcopy(model).eval().requires_grad_(False) if ema is not None else None
    settings = {"method": method, "eps": float(eps), "alpha": alpha, "steps": int(steps), "beta": float(beta),
                "batch_size": int(batch_size), "lr": float(lr), "momentum": float(momentum), "schedule": schedule,
                "weight_decay": float(weight_decay), "grad_clip": grad_clip, "ema": ema, "augment": bool(augment),
                "val_split": int(val_split), "seed": int(seed), "n": len(images), "world_size": world_size}
    state = {"history": [], "best_epoch": 0, "best_score": -1.0}
    best: dict[str, torch.Tensor] = {}
    start = 0
    ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if world_size > 1 and checkpoint_dir is not None:
        dist.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
    if ckpt is not None:
        start, best = _restore(ckpt, model, opt, ema_model, settings, state, epochs, checkpoint_dir, rank)
    _broadcast_([*model.parameters(), *model.buffers()], world_size)
    if ema_model is not None:
        _broadcast_([*ema_model.parameters(), *ema_model.buffers()], world_size)
    for epoch in range(start, epochs):
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(schedule, epoch, epochs)
        record = _epoch(model, forward, opt, ema_model, ema, images, labels, train_idx, epoch, epochs, settings,
                        amp, channels_last, progress and rank == 0, device, rank, world_size)
        _broadcast_(list(model.buffers()), world_size)
        judged = ema_model if ema_model is not None else model
        if sel_images is not None and epoch + 1 > epochs // 2:
            clean, robust = _select_score(judged, sel_images, sel_labels, eps, device, seed, rank, world_size)
            record.update(val_clean=clean, val_pgd20=robust)
            if robust > state["best_score"]:
                state["best_score"], state["best_epoch"] = robust, epoch + 1
                best = {k: v.detach().clone() for k, v in judged.state_dict().items()}
        state["history"].append(record)
        if checkpoint_dir is not None and rank == 0:
            _save(checkpoint_dir, model, opt, ema_model, best, settings, state, epochs)
    final = ema_model.state_dict() if ema_model is not None else None
    if best:
        final = best
    if final is not None:
        model.load_state_dict(final)
    selected = state["best_epoch"] if best else epochs
    return {"history": state["history"], "selected_epoch": selected, "selected_by": selected_by}


def _epoch(model, forward, opt, ema_model, ema, images, labels, train_idx, epoch, epochs, s, amp, channels_last,
           progress, device, rank, world_size) -> dict:
    order = train_idx[torch.randperm(len(train_idx), generator=stream_generator(s["seed"], epoch))]
    # The random draws of a global batch (augmentation, attack start) come from one stream shared by the ranks and
    # are sliced per rank: n ranks draw what one rank does, and a resumed epoch what a fresh one does.
    draws = torch.Generator(device=device).manual_seed(stream_seed(s["seed"], epoch, 1))
    bs = s["batch_size"]
    n_batches = math.ceil(len(order) / bs)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(total=n_batches, desc=f"{s['method']} epoch {epoch + 1}/{epochs}", disable=not progress)
    for i in range(n_batches):
        idx = order[i * bs:(i + 1) * bs]
        if len(idx) < world_size:  # a last batch too small to give every rank an image: dropped on every rank
            break
        mine = _share_slice(len(idx), rank, world_size)
        share = idx[mine]
        x, y = images[share].to(device, non_blocking=True), labels[share].to(device, non_blocking=True)
        aug = torch.rand((len(idx), 3), generator=draws, device=device)[mine]
        noise = start_noise(s["method"], (len(idx), *x.shape[1:]), draws, device)[mine]
        if s["augment"]:
            x = crop_flip(x, aug)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with frozen_eval(model):
            x_adv = training_attack(forward, x, y, s["method"], s["eps"], s["alpha"], s["steps"], noise, amp)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            adv_logits = forward(x_adv).float()
            if s["method"] in ("trades", "mart"):
                clean_logits = forward(x).float()
                loss = adv_loss(clean_logits, adv_logits, y, s["method"], beta=s["beta"]).mean()
            else:
                loss = F.cross_entropy(adv_logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if world_size > 1:
            torch._foreach_mul_(grads, len(share) / len(idx))
            _all_reduce_(grads, world_size)
        if s["grad_clip"] is not None:
            nn.utils.clip_grad_norm_(model.parameters(), s["grad_clip"])
        opt.step()
        if ema_model is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(ema_model.parameters()), list(model.parameters()), 1 - ema)
                for e, b in zip(ema_model.buffers(), model.buffers(), strict=True):
                    e.copy_(b)
        loss_sum += loss.detach() * len(share)
        correct += (adv_logits.detach().argmax(1) == y).sum()
        nonfinite |= ~torch.isfinite(loss.detach())
        bar.update()
    bar.close()
    totals = torch.stack([loss_sum, correct, nonfinite.float()])
    _all_reduce_([totals], world_size)
    loss_total, correct_total, bad = totals.tolist()
    if bad:
        raise ValueError(f"dataset: the {s['method']} loss became NaN or inf in epoch {epoch + 1}; lower lr or check "
                         "the data")
    n = len(order)
    return {"epoch": epoch + 1, "loss": loss_total / n, "adv_acc": correct_total / n,
            "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}


def _share_slice(n: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of n that `rank` takes (torch.tensor_split's partition)."""
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


def _select_score(model, images, labels, eps, device, seed, rank, world_size, batch_size=256) -> tuple[float, float]:
    """(clean, PGD-20) accuracy on the selection set (α = ε/10, the spec's 0.8/255 at 8/255), sharded over ranks."""
    counts = torch.zeros(2, device=device)
    idx = torch.arange(len(images)).tensor_split(world_size)[rank]
    generator = torch.Generator(device=device).manual_seed(seed)
    with frozen_eval(model):
        for i in range(0, len(idx), batch_size):
            part = idx[i:i + batch_size]
            clean, robust = pgd20_correct(model, images[part].to(device), labels[part].to(device), eps, eps / 10,
                                          generator=generator)
            counts += torch.stack([clean.sum(), robust.sum()]).float()
    _all_reduce_([counts], world_size)
    clean, robust = (counts / len(images)).tolist()
    return clean, robust


def _save(directory, model, opt, ema_model, best, settings, state, epochs) -> None:
    tensors, opt_rest = optimizer_to_checkpoint(opt)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    if ema_model is not None:
        tensors.update({f"ema.{k}": v for k, v in ema_model.state_dict().items()})
    tensors.update({f"best.{k}": v for k, v in best.items()})
    save_checkpoint(directory, {k: v.detach().contiguous() for k, v in tensors.items()},
                    {**state, "epochs": epochs, "settings": settings, "optimizer": opt_rest})


def _restore(ckpt, model, opt, ema_model, settings, state, epochs, directory, rank) -> tuple[int, dict]:
    tensors, saved = ckpt
    source = f"{directory}/checkpoint.json"
    saved_settings = get_key(saved, "settings", source, dict)
    history = get_key(saved, "history", source, list)
    differ = {k: (saved_settings.get(k), v) for k, v in settings.items() if saved_settings.get(k) != v}
    if differ:
        raise ValueError(f"checkpoint_dir {directory} holds a run with other settings "
                         f"({', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in differ.items())}); "
                         "use the same settings to resume or a new checkpoint_dir")
    if len(history) > epochs:
        raise ValueError(f"checkpoint_dir {directory} holds {len(history)} finished epochs, more than epochs={epochs}")

    def part(prefix):
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        model.load_state_dict(part("model."))
        if ema_model is not None:
            ema_model.load_state_dict(part("ema."))
        optimizer_from_checkpoint(opt, tensors, get_key(saved, "optimizer", source, dict))
    except (RuntimeError, KeyError, TypeError) as err:
        raise ValueError(f"checkpoint_dir {directory}: the checkpoint does not fit this model and optimizer "
                         f"({' '.join(str(err).split())[:300]})") from None
    state.update(history=history, best_epoch=get_key(saved, "best_epoch", source, int),
                 best_score=float(get_key(saved, "best_score", source, (int, float))))
    return len(history), part("best.")
