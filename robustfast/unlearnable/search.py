"""Error-minimizing noise (Huang et al., ICLR 2021): the bi-level min-min search, sample-wise or class-wise.

Each round (spec unlearnable_examples.md §2-3):
  (a) θ phase: `train_steps` SGD steps of the surrogate, in train mode, on the next batches of a persistent
      stream of x + δ (unclamped by default, as the reference);
  (b) δ phase: for every batch of the noise set, on a frozen eval-mode copy of the surrogate with BatchNorm
      folded into the convolutions, `steps` sign-descent steps through the fused pgd_step op (input gradients
      only, no host synchronisation); sample-wise noise stores η per sample, class-wise noise sets δ_k to the
      ε-clipped batch mean of η over class k;
  (c) stop test: the surrogate's error on x + δ over the noise set; stop when it is < stop_error,
      or after max_rounds rounds.
The noise is one device tensor, gathered and scattered by batch indices; the host reads one number per round.
"""
from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from robustfast._util.checks import check_images, check_labels, is_int, is_real, opmath_dtype, require
from robustfast._util.frozen import frozen_eval, model_device
from robustfast.training.checkpoint import (
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    save_checkpoint,
)
from robustfast.models.fold import frozen_eval_copy
from robustfast.unlearnable.batches import NOISE, THETA, BatchCycle, stratified_subset
from robustfast.unlearnable.phases import (
    class_mean_update,
    count_errors,
    minimize_noise,
    train_surrogate,
)
from robustfast.unlearnable.report import NoiseReport

KINDS = ("samplewise", "classwise")
# The reference settings files: 20 steps per sample-wise update, 1 per class-wise update.
DEFAULT_STEPS = {"samplewise": 20, "classwise": 1}
# Noise steps on a CPU run over chunks of this many images: each sample's gradient is its own (eval mode), and a
# chunk's activations stay in cache (at batch 512, half the time of a whole batch per step).
CPU_CHUNK = 128


def _check_settings(s: dict) -> None:
    require("kind", s["kind"], s["kind"] in KINDS, f"one of {KINDS}")
    require("eps", s["eps"], is_real(s["eps"]) and 0 < s["eps"] <= 1, "a number in (0, 1]")
    require("step_size", s["step_size"], is_real(s["step_size"]) and s["step_size"] > 0, "a number > 0")
    for name in ("steps", "train_steps", "batch_size"):
        require(name, s[name], is_int(s[name]) and s[name] >= 1, "an int >= 1")
    require("stop_error", s["stop_error"], is_real(s["stop_error"]) and 0 <= s["stop_error"] <= 1,
             "a number in [0, 1]")
    require("subset_fraction", s["subset_fraction"],
             is_real(s["subset_fraction"]) and 0 < s["subset_fraction"] <= 1, "a number in (0, 1]")
    require("lr", s["lr"], is_real(s["lr"]) and s["lr"] > 0, "a number > 0")
    require("momentum", s["momentum"], is_real(s["momentum"]) and s["momentum"] >= 0, "a number >= 0")
    require("weight_decay", s["weight_decay"], is_real(s["weight_decay"]) and s["weight_decay"] >= 0,
             "a number >= 0")
    require("grad_clip", s["grad_clip"], s["grad_clip"] is None or (is_real(s["grad_clip"]) and s["grad_clip"] > 0),
             "None or a number > 0")
    require("seed", s["seed"], is_int(s["seed"]) and s["seed"] >= 0, "an int >= 0")


def _check_data(model, images, labels) -> int:
    """Checks the model, images and labels; returns the number of classes (the model's output width)."""
    require("model", model, isinstance(model, nn.Module), "a torch.nn.Module")
    check_images(images)
    check_labels(labels, images.shape[0], images.device)
    device = model_device(model)
    if device is not None and device != images.device:
        raise ValueError(f"the model is on {device} but images are on {images.device}; move one of them")
    with frozen_eval(model), torch.no_grad():
        num_classes = model(images[:1]).shape[1]
    lo, hi = labels.min().item(), labels.max().item()
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) (the model's {num_classes} outputs), "
                         f"got values in [{lo}, {hi}]")
    return num_classes


class _Search:
    """State of one search: the data, the noise store, the batch streams and the surrogate's optimizer."""

    def __init__(self, model, images, labels, s: dict, num_classes: int):
        self.model, self.images, self.labels, self.s = model, images, labels.long(), s
        n, device, bs = images.shape[0], images.device, s["batch_size"]
        self.classwise = s["kind"] == "classwise"
        rows = num_classes if self.classwise else n
        self.noise = torch.zeros((rows, *images.shape[1:]), dtype=images.dtype, device=device)
        dtype = opmath_dtype(images.dtype)
        self._alpha = torch.full((bs,), s["step_size"], dtype=dtype, device=device)
        self._eps = torch.full((bs,), s["eps"], dtype=dtype, device=device)
        if self.classwise:
            subset = stratified_subset(labels, s["subset_fraction"], num_classes, s["seed"])
            self.theta = BatchCycle(n, bs, shuffle=True, drop_last=True, seed=s["seed"], stream=THETA, device=device)
            self.updates = BatchCycle(subset, bs, shuffle=True, drop_last=True, seed=s["seed"], stream=NOISE,
                                      device=device)
            self.tested = BatchCycle(subset, bs, shuffle=False, drop_last=False, device=device).epoch(0)
            for name, stream, what in (("the training set", self.theta, n), ("the subset", self.updates, len(subset))):
                if len(stream) == 0:
                    raise ValueError(f"batch_size {bs} is larger than {what} images of {name}: class-wise search "
                                     "drops the last short batch, so no batch would remain; lower batch_size")
        else:
            self.theta = BatchCycle(n, bs, shuffle=False, drop_last=False, device=device)
            self.updates = self.theta
            self.tested = self.theta.epoch(0)
        self.tested_count = sum(len(range(n)[b]) if isinstance(b, slice) else len(b) for b in self.tested)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                                         weight_decay=s["weight_decay"])
        self.cursor = 0  # batches of the θ stream consumed so far

    def noisy(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.labels[batch]
        x = self.images[batch] + self.noise[y if self.classwise else batch]
        return (x.clamp_(0, 1) if self.s["clamp_inputs"] else x), y

    def round(self, r: int) -> torch.Tensor:
        """One round; returns the stop-test error as a 0-dim device tensor."""
        s = self.s
        batches = self.theta.take(self.cursor, s["train_steps"])
        self.cursor += len(batches)
        self.model.train()
        train_surrogate(self.model, self.optimizer, (self.noisy(b) for b in batches), s["grad_clip"], s["amp"])
        with frozen_eval(self.model), torch.enable_grad():
            surrogate = self.model if s["exact"] else frozen_eval_copy(self.model)
            for batch in self.updates.epoch(r):
                self._update(surrogate, batch)
            wrong = count_errors(surrogate, (self.noisy(b) for b in self.tested), s["amp"])
        return wrong / self.tested_count

    def _update(self, surrogate, batch) -> None:
        s, x0, y = self.s, self.images[batch], self.labels[batch]
        delta = self.noise[y] if self.classwise else self.noise[batch]
        chunk = len(y)
        if not s["exact"]:
            x0, delta = (t.contiguous(memory_format=torch.channels_last) for t in (x0, delta))
            chunk = CPU_CHUNK if x0.device.type == "cpu" else chunk
        parts = [self._minimize(surrogate, x0[i:i + chunk], y[i:i + chunk], delta[i:i + chunk])
                 for i in range(0, len(y), chunk)]
        eta = parts[0] if len(parts) == 1 else torch.cat(parts)
        if self.classwise:
            self.noise = class_mean_update(self.noise, eta, y, s["eps"])
        else:
            self.noise[batch] = eta

    def _minimize(self, surrogate, x0, y, delta) -> torch.Tensor:
        m, s = len(y), self.s
        return minimize_noise(surrogate, x0, y, delta, alpha=self._alpha[:m], eps=self._eps[:m], eps_value=s["eps"],
                              steps=s["steps"], amp=s["amp"])

    def to_checkpoint(self, report: NoiseReport) -> tuple[dict, dict]:
        tensors, opt_rest = optimizer_to_checkpoint(self.optimizer)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors["noise"] = self.noise
        tensors["rng.cpu"] = torch.get_rng_state()
        if self.images.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.images.device)
        state = {"settings": self.s, "cursor": self.cursor, "optimizer": opt_rest, "errors": report.errors,
                 "round_seconds": report.round_seconds}
        return tensors, state

    def restore(self, tensors: dict, state: dict, report: NoiseReport, directory) -> None:
        differ = {k: (state["settings"].get(k), v) for k, v in self.s.items() if state["settings"].get(k) != v}
        if differ:
            raise ValueError(f"checkpoint_dir {directory} holds a search with other settings or data "
                             f"({', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in differ.items())}); "
                             "use the same settings to resume or a new checkpoint_dir")
        self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_checkpoint(self.optimizer, tensors, state["optimizer"])
        self.noise.copy_(tensors["noise"])
        torch.set_rng_state(tensors["rng.cpu"])
        if self.images.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.images.device)
        self.cursor = state["cursor"]
        report.errors[:], report.round_seconds[:] = state["errors"], state["round_seconds"]


def error_minimizing_noise(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, kind: str = "samplewise",
                           *, eps: float = 8 / 255, step_size: float = 0.8 / 255, steps: int | None = None,
                           train_steps: int = 10, stop_error: float = 0.01, max_rounds: int = 30,
                           batch_size: int = 512, lr: float = 0.1, momentum: float = 0.9,
                           weight_decay: float = 5e-4, grad_clip: float | None = 5.0, subset_fraction: float = 0.2,
                           clamp_inputs: bool = False, seed: int = 0, checkpoint_dir=None, progress: bool = True,
                           exact: bool = False, amp: bool = False) -> tuple[torch.Tensor, NoiseReport]:
    """Search error-minimizing noise for `images` (N×C×H×W in [0, 1]) with `labels`; return (noise, report).

    `model` is the surrogate (a freshly initialised classifier, on the images' device); it is trained in place
    by one SGD optimizer (lr, momentum, weight_decay, global grad-norm clip `grad_clip`) kept for the whole search.
    kind="samplewise": noise is N×C×H×W, one δ per image; the θ stream and the noise updates walk the data in a
        fixed order in batches of `batch_size`, the stop test covers the whole set. `steps` defaults to 20.
    kind="classwise": noise is K×C×H×W (K = the model's outputs), δ_i = δ_{y_i}; θ steps draw shuffled, drop-last
        batches of the whole set; noise updates and the stop test use a seeded stratified subset
        (`subset_fraction`, 20 %), each update setting δ_k to the ε-clipped mean of the batch's η over class k.
        `steps` defaults to 1.
    Every entry of the noise lies in [−eps, eps]; it starts at 0. The search stops when the error on x + δ falls
    under `stop_error`, or after `max_rounds` rounds: `report.converged` / `report.stopped_on_cap` say which.
    `clamp_inputs=True` clamps x + δ to [0, 1] in the θ phase and the stop test (the reference does not).
    With `checkpoint_dir`, every finished round is saved (noise, surrogate, optimizer, RNG, stream position) and
    a later call with the same directory and settings resumes after it (a larger max_rounds continues a search
    that stopped on the cap).
    The δ phase and the stop test run on a frozen copy of the surrogate made after each θ phase, with BatchNorm
    folded into the convolutions, in channels_last, and on a CPU over chunks of 128 images; it rounds differently
    from the model itself, so near-zero gradient entries can take the other sign. `exact=True` runs them on the
    model itself in whole batches, as the published loop does (the parity path). `amp` runs the surrogate under
    bf16 autocast.
    """
    settings = {"kind": kind, "eps": eps, "step_size": step_size,
                "steps": DEFAULT_STEPS.get(kind, 1) if steps is None else steps, "train_steps": train_steps,
                "stop_error": stop_error, "batch_size": batch_size, "lr": lr, "momentum": momentum,
                "weight_decay": weight_decay, "grad_clip": grad_clip, "subset_fraction": subset_fraction,
                "clamp_inputs": bool(clamp_inputs), "seed": seed, "exact": bool(exact), "amp": bool(amp)}
    _check_settings(settings)
    require("max_rounds", max_rounds, is_int(max_rounds) and max_rounds >= 1, "an int >= 1")
    num_classes = _check_data(model, images, labels)
    settings.update(n=int(images.shape[0]), num_classes=num_classes,
                    data_sum=float(images.double().sum()), labels_sum=int(labels.sum()))
    device = images.device
    report = NoiseReport(kind=kind, stop_error=float(stop_error), max_rounds=max_rounds)
    was_training = model.training
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.manual_seed(seed)
        search = _Search(model, images.detach(), labels, settings, num_classes)
        ckpt = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        if ckpt is not None:
            search.restore(*ckpt, report, checkpoint_dir)
        bar = tqdm(total=max_rounds, initial=report.rounds, desc=f"{kind} noise", unit="round", disable=not progress)
        try:
            while not report.converged and report.rounds < max_rounds:
                t0 = time.perf_counter()
                error = search.round(report.rounds).item()  # the one host read of the round
                report.errors.append(error)
                report.round_seconds.append(time.perf_counter() - t0)
                if checkpoint_dir is not None:
                    save_checkpoint(checkpoint_dir, *search.to_checkpoint(report))
                bar.update()
                bar.set_postfix(train_error=f"{error:.4f}")
        finally:
            bar.close()
            model.train(was_training)
    return search.noise, report
