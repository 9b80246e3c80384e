"""Reconstructive Neuron Pruning (specs/ebyd.md §3, Li et al. 2023): unlearn → recover BN masks → prune.

1. Unlearn: gradient ascent on CE over the defense set (SGD lr 0.01, momentum 0.9, wd 5e-4, ×0.1 at epochs 10
   and 20, batch 128, ≤ 20 epochs), stopping after the first epoch whose running training accuracy is ≤ 0.20.
2. Recover: every affine BN layer of the unlearned model gets a per-channel mask m (init 1) multiplying γ (β is
   not masked); only m is trained, on 0.2·CE over the defense set (SGD lr 0.2, momentum 0.9, 20 epochs),
   clamped to [0, 1] after each step.
3. Prune the original model: for each τ of the grid, γ = 0 (β kept, as in the reference; zero_bias=True zeroes
   β too) on every channel with m ≤ τ, ranked globally.

The τ sweep runs in one pass per batch: the BN scales of every τ are stacked, γ⊙1[m > τ], and one vmapped
functional call (torch.func) evaluates all of them; `per_tau=True` evaluates each τ separately instead (the
parity oracle and the benchmark's baseline). Predictions are counted with bincount.
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
from robustfast.backdoor.expose import batchnorms, num_classes_of
from robustfast.backdoor.expose_data import as_tensors, epoch_batches, predictions

TAUS = tuple(round(0.05 * i, 2) for i in range(19))  # 0, 0.05, …, 0.90


@dataclasses.dataclass
class RNPResult:
    taus: list[float]
    pruned: list[int]           # channels with m ≤ τ
    clean_acc: list[float]
    asr: list[float]
    masks: dict[str, torch.Tensor]  # BN layer name → recovered mask
    unlearn_acc: list[float]    # running training accuracy per unlearning epoch
    base_clean_acc: float       # the original model's CA and ASR
    base_asr: float

    def table(self) -> str:
        rows = [{"tau": t, "pruned": n, "CA": a, "ASR": s}
                for t, n, a, s in zip(self.taus, self.pruned, self.clean_acc, self.asr, strict=True)]
        return table([{"tau": "original", "pruned": 0, "CA": self.base_clean_acc, "ASR": self.base_asr}, *rows],
                     ["tau", "pruned", "CA", "ASR"])


def _check_taus(taus) -> tuple[float, ...]:
    ok = isinstance(taus, (list, tuple)) and len(taus) > 0 and all(is_real(t) and 0 <= t <= 1 for t in taus)
    require("taus", taus, ok, "a non-empty list of thresholds in [0, 1]")
    return tuple(float(t) for t in taus)


def unlearn(model: nn.Module, x, y, *, epochs: int = 20, lr: float = 0.01, batch_size: int = 128,
            stop_acc: float = 0.2, augment=None, seed: int = 0) -> list[float]:
    """Step 1 in place on `model`; returns the running training accuracy of each epoch run."""
    device = next(model.parameters()).device
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    accs = []
    model.train()
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = lr * 0.1 ** sum(epoch >= m for m in (10, 20))
        correct = torch.zeros((), dtype=torch.long, device=device)
        aug = stream_generator(seed, 12, epoch)
        for idx in epoch_batches(len(y), batch_size, seed, epoch):
            xb, yb = x[idx].to(device), y[idx].to(device)
            if augment is not None:
                xb = augment(xb, aug)
            logits = model(xb)
            loss = -F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            correct += (logits.detach().argmax(1) == yb).sum()
        accs.append(correct.item() / len(y))
        if accs[-1] <= stop_acc:
            break
    return accs


def recover_masks(model: nn.Module, x, y, *, epochs: int = 20, lr: float = 0.2, batch_size: int = 128,
                  augment=None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Step 2: train per-channel masks on γ of every BN layer of `model` (not modified), minimising 0.2·CE."""
    bns = batchnorms(model, "rnp")
    device = next(model.parameters()).device
    masks = {n: torch.ones_like(m.weight, requires_grad=True) for n, m in bns}
    gammas = {n: m.weight.detach() for n, m in bns}
    opt = torch.optim.SGD(list(masks.values()), lr=lr, momentum=0.9)
    work = copy.deepcopy(model).requires_grad_(False)
    work.train()
    for epoch in range(epochs):
        aug = stream_generator(seed, 12, 100 + epoch)
        for idx in epoch_batches(len(y), batch_size, seed, 100 + epoch):
            xb, yb = x[idx].to(device), y[idx].to(device)
            if augment is not None:
                xb = augment(xb, aug)
            params = {f"{n}.weight": gammas[n] * masks[n] for n in masks}
            loss = 0.2 * F.cross_entropy(torch.func.functional_call(work, params, (xb,)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for m in masks.values():
                    m.clamp_(0, 1)
    return {n: m.detach() for n, m in masks.items()}


def pruned_bn(model: nn.Module, masks: dict[str, torch.Tensor], taus, zero_bias: bool = False) -> dict:
    """BN parameters of `model` pruned at every τ, stacked on a leading τ dimension: {name: (T, channels)}."""
    state = dict(model.named_parameters())
    out = {}
    for n, m in masks.items():
        keep = torch.stack([(m > t) for t in taus]).to(state[f"{n}.weight"].dtype)
        out[f"{n}.weight"] = state[f"{n}.weight"].detach() * keep
        if zero_bias:
            out[f"{n}.bias"] = state[f"{n}.bias"].detach() * keep
    return out


def sweep_counts(model: nn.Module, stacked: dict, inputs, labels, num_classes: int, per_tau: bool = False,
                 batch_size: int = 512) -> torch.Tensor:
    """Prediction counts (T, C) of the model with each τ's BN parameters on (inputs, labels), and the number of
    correct predictions, as a (T, C + 1) tensor (last column: correct). One vmapped call per batch, or one call
    per τ with per_tau=True."""
    device = next(model.parameters()).device
    taus = next(iter(stacked.values())).shape[0]
    counts = torch.zeros(taus, num_classes + 1, dtype=torch.long)
    was_training = model.training
    model.eval()

    def call(p, xb):
        return torch.func.functional_call(model, p, (xb,))

    try:
        with torch.no_grad():
            for i in range(0, len(inputs), batch_size):
                xb, yb = inputs[i:i + batch_size].to(device), labels[i:i + batch_size].to(device)
                if per_tau:
                    pred = torch.stack([call({k: v[t] for k, v in stacked.items()}, xb).argmax(-1)
                                        for t in range(taus)])
                else:
                    pred = torch.vmap(call, in_dims=(0, None))(stacked, xb).argmax(-1)
                rows = torch.arange(taus, device=device)[:, None] * num_classes + pred
                counts[:, :num_classes] += torch.bincount(rows.flatten(), minlength=taus * num_classes).view(
                    taus, num_classes).cpu()
                counts[:, num_classes] += (pred == yb).sum(1).cpu()
    finally:
        model.train(was_training)
    return counts


def rnp(model: nn.Module, clean_set, *, test_set, asr_set, taus=TAUS, unlearn_epochs: int = 20,
        unlearn_lr: float = 0.01, stop_acc: float = 0.2, recover_epochs: int = 20, recover_lr: float = 0.2,
        batch_size: int = 128, zero_bias: bool = False, augment=None, seed: int = 0, per_tau: bool = False,
        progress: bool = False) -> RNPResult:
    """RNP on `model` (not modified) with the defense set `clean_set`; CA on `test_set` and ASR on `asr_set`
    (triggered inputs labelled with the target) at every τ. Any model whose BatchNorm layers are affine."""
    taus = _check_taus(taus)
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    for name, v in (("unlearn_epochs", unlearn_epochs), ("recover_epochs", recover_epochs),
                    ("batch_size", batch_size)):
        require(name, v, is_int(v) and v >= 1, "an int >= 1")
    for name, v in (("unlearn_lr", unlearn_lr), ("recover_lr", recover_lr)):
        require(name, v, is_real(v) and v > 0, "a finite number > 0")
    require("stop_acc", stop_acc, is_real(stop_acc) and 0 <= stop_acc <= 1, "a number in [0, 1]")
    batchnorms(model, "rnp")
    x, y = as_tensors(clean_set, "clean_set")
    tx, ty = as_tensors(test_set, "test_set")
    ax, ay = as_tensors(asr_set, "asr_set")
    steps = tqdm(total=3, desc="rnp", disable=not progress)
    unlearned = copy.deepcopy(model)
    accs = unlearn(unlearned, x, y, epochs=unlearn_epochs, lr=unlearn_lr, batch_size=batch_size, stop_acc=stop_acc,
                   augment=augment, seed=seed)
    steps.update()
    masks = recover_masks(unlearned, x, y, epochs=recover_epochs, lr=recover_lr, batch_size=batch_size,
                          augment=augment, seed=seed)
    steps.update()
    stacked = pruned_bn(model, masks, taus, zero_bias)
    num_classes = num_classes_of(model, tx)
    clean = sweep_counts(model, stacked, tx, ty, num_classes, per_tau)
    poisoned = sweep_counts(model, stacked, ax, ay, num_classes, per_tau)
    steps.update()
    steps.close()
    every = torch.cat([m.flatten() for m in masks.values()])
    return RNPResult(taus=list(taus), pruned=[int((every <= t).sum()) for t in taus],
                     clean_acc=(clean[:, -1].double() / len(ty)).tolist(),
                     asr=(poisoned[:, -1].double() / len(ay)).tolist(), masks=masks, unlearn_acc=accs,
                     base_clean_acc=(predictions(model, tx).cpu() == ty).double().mean().item(),
                     base_asr=(predictions(model, ax).cpu() == ay).double().mean().item())


def prune(model: nn.Module, masks: dict[str, torch.Tensor], tau: float, zero_bias: bool = False) -> nn.Module:
    """A copy of `model` with γ = 0 (and β = 0 with zero_bias) on every BN channel whose mask is ≤ tau."""
    tau = _check_taus([tau])[0]
    pruned = copy.deepcopy(model)
    state = {k: v[0] for k, v in pruned_bn(model, masks, [tau], zero_bias).items()}
    with torch.no_grad():
        for k, v in pruned.named_parameters():
            if k in state:
                v.copy_(state[k])
    return pruned
