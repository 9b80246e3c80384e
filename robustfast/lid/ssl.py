"""Self-supervised learning on small images: SimCLR and BYOL, each with or without LDReg, and a linear probe.

LDReg wiring follows the spec (ldreg_lid.md §3): SimCLR regularises the encoder outputs (before the projector) of
both views, 2B points, against themselves (gathered across ranks, detached); BYOL regularises each view's online
encoder features against the union of the online and momentum encoders' features of both views (4B points) and
sums the two views' terms. The regulariser is off for the first `warmup_epochs`.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from robustfast._util.checks import is_real
from robustfast.lid.estimate import gmean, lid
from robustfast.lid.ldreg import MAX_BETA, LDReg
from robustfast.models import SmallCNN
from robustfast.training.ssl import augment, byol_loss, mlp, nt_xent

METHODS = ("simclr", "byol")


class SSLModel(nn.Module):
    """Encoder (SmallCNN's convolutional trunk, 4·width features), projector and, for BYOL, predictor."""

    def __init__(self, method: str = "simclr", width: int = 16, in_channels: int = 3, proj_dim: int = 64):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        self.method = method
        self.encoder = SmallCNN(in_channels=in_channels, width=width).features
        feat = 4 * width
        self.projector = mlp((feat, 2 * feat, proj_dim))
        self.predictor = mlp((proj_dim, 2 * feat, proj_dim)) if method == "byol" else None


def _ssl_step(model, target, ldreg, x1, x2, temperature, use_reg):
    """(loss, regulariser or None) of one batch of two views."""
    h1, h2 = model.encoder(x1), model.encoder(x2)
    z1, z2 = model.projector(h1), model.projector(h2)
    if model.method == "simclr":
        loss = nt_xent(z1, z2, temperature).mean()
        reg = ldreg(torch.cat([h1, h2])) if use_reg else None
    else:
        with torch.no_grad():
            t1, t2 = target.encoder(x1), target.encoder(x2)
            y1, y2 = target.projector(t1), target.projector(t2)
        loss = (byol_loss(model.predictor(z1), y2) + byol_loss(model.predictor(z2), y1)).mean()
        reg = None
        if use_reg:
            union = torch.cat([h1, h2, t1, t2])
            reg = ldreg(h1, union, offset=0) + ldreg(h2, union, offset=h1.shape[0])
    return (loss if reg is None else loss + reg), reg


def train_ssl(train_set: TensorDataset, method: str = "simclr", ldreg: LDReg | None = None, epochs: int = 20,
              batch_size: int = 256, lr: float = 2e-3, width: int = 16, temperature: float = 0.2,
              momentum: float = 0.99, warmup_epochs: int = 0, seed: int = 0, device="cpu",
              progress: bool = True) -> tuple[SSLModel, list[dict]]:
    """Train an SSLModel on the images of `train_set` (labels unused) with Adam and a cosine schedule; return it
    and the per-epoch history {"epoch", "loss", "reg", "seconds"}. The same seed gives the same run."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 4:
        raise ValueError(f"batch_size must be an int >= 4, got {batch_size!r}")
    device = torch.device(device)
    images = train_set.tensors[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SSLModel(method, width=width, in_channels=images.shape[1]).to(device)
    target = copy.deepcopy(model).requires_grad_(False) if method == "byol" else None
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-6)
    gen = torch.Generator(device=device).manual_seed(seed)
    order_gen = torch.Generator().manual_seed(seed)
    steps = len(images) // batch_size  # whole batches only: LDReg's k and BatchNorm want full batches
    history = []
    for epoch in range(epochs):
        t0, total, total_reg = time.perf_counter(), 0.0, 0.0
        use_reg = ldreg is not None and epoch >= warmup_epochs
        order = torch.randperm(len(images), generator=order_gen)
        bar = tqdm(range(steps), desc=f"{method} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i in bar:
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (epoch + i / steps) / epochs))
            x = images[order[i * batch_size:(i + 1) * batch_size]].to(device)
            loss, reg = _ssl_step(model, target, ldreg, augment(x, gen), augment(x, gen), temperature, use_reg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if target is not None:
                with torch.no_grad():
                    for pt, po in zip(target.parameters(), model.parameters(), strict=True):
                        pt.lerp_(po, 1 - momentum)
                    for bt, bo in zip(target.buffers(), model.buffers(), strict=True):
                        bt.copy_(bo)
            total += loss.item()
            total_reg += 0.0 if reg is None else reg.item()
        history.append({"epoch": epoch + 1, "loss": total / steps, "reg": total_reg / steps,
                        "seconds": time.perf_counter() - t0})
    return model, history


@torch.no_grad()
def representations(model: SSLModel, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Encoder features (N, 4·width) of `images`, in eval mode; the model's mode is restored."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return torch.cat([model.encoder(images[i:i + batch_size].to(device)).cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        model.train(was)


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor) -> float:
    """Test accuracy in [0, 1] of a multinomial logistic regression on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_features.numpy())
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(train_features.numpy()), train_labels.numpy())
    pred = clf.predict(scaler.transform(test_features.numpy()))
    return float(np.mean(pred == test_labels.numpy()))


def evaluate_ssl(model: SSLModel, train_set: TensorDataset, test_set: TensorDataset, k: int = 20) -> dict:
    """{"probe_acc", "gmean_lid"}: linear-probe accuracy on the test set, and the geometric-mean MLE LID (k
    neighbours, literature form) of the test set's representations among themselves."""
    train_f = representations(model, train_set.tensors[0])
    test_f = representations(model, test_set.tensors[0])
    acc = linear_probe(train_f, train_set.tensors[1], test_f, test_set.tensors[1])
    return {"probe_acc": acc, "gmean_lid": gmean(lid(test_f, k=k)).item()}


def _check_beta(beta) -> None:
    """beta as LDReg takes it, also where 0 means "no LDReg" (NaN > 0 is False: it would train without it)."""
    if not (is_real(beta) and 0 <= beta <= MAX_BETA):
        raise ValueError(f"beta must be a finite number in [0, {MAX_BETA:g}], got {beta!r}")


def run(train_set: TensorDataset, test_set: TensorDataset, method: str = "simclr", beta: float = 0.0,
        k: int = 16, form: str = "l1", **train_kwargs) -> dict:
    """Train with LDReg(beta, k, form) (none when beta is 0) and evaluate: {"method", "beta", "probe_acc",
    "gmean_lid", "seconds", "history"}."""
    _check_beta(beta)
    t0 = time.perf_counter()
    ldreg = LDReg(beta=beta, k=k, form=form) if beta > 0 else None
    model, history = train_ssl(train_set, method=method, ldreg=ldreg, **train_kwargs)
    return {"method": method, "beta": beta, **evaluate_ssl(model, train_set, test_set),
            "seconds": time.perf_counter() - t0, "history": history}


def digits_comparison(method: str = "simclr", beta: float = 0.1, k: int = 16, epochs: int = 8, size: int = 8,
                      batch_size: int = 128, width: int = 8, seed: int = 0, device: str = "auto") -> list[dict]:
    """`robustfast ldreg`: SSL on digits (3×size×size) without and with LDReg(beta), same seed; one row each."""
    from robustfast._util.device import resolve_device
    from robustfast.data import digits

    _check_beta(beta)  # before the run without LDReg, not after it
    dev = resolve_device(device)
    train, test = digits("train", size=size, channels=3), digits("test", size=size, channels=3)
    return [run(train, test, method=method, beta=b, k=k, epochs=epochs, batch_size=batch_size, width=width, lr=3e-3,
                seed=seed, device=dev) for b in (0.0, beta)]
