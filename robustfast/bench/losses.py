"""`robustfast bench losses`: forward + backward of NCE+RCE, the fused op per backend against autograd through
the reference composition, same logits, in one run; then the noisy-digits accuracy table."""
from __future__ import annotations

import functools

import torch

import robustfast
from robustfast import _backend
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.ops import robust_loss
from robustfast.reference import robust_loss as reference


def _fused(logits, labels):
    logits.grad = None
    robust_loss(logits, labels, "nce+rce", alpha=1.0, beta=1.0).mean().backward()
    return logits.grad


def _composed(logits, labels):
    logits.grad = None
    reference.robust_loss(logits, labels, "nce+rce", 1.0, 1.0).mean().backward()
    return logits.grad


def loss_rows(device: torch.device, batch: int, classes, repeats: int) -> list[dict]:
    backends = [b for b in _backend.available(device) if b in ("triton", "cpp", "cuda")
                and not (b == "triton" and device.type == "cpu")]
    rows = []
    for k in classes:
        g = torch.Generator(device=device).manual_seed(k)
        logits = (3 * torch.randn(batch, k, generator=g, device=device)).requires_grad_(True)
        labels = torch.randint(0, k, (batch,), generator=g, device=device)
        base, _ = median_seconds(functools.partial(_composed, logits, labels), device, repeats)
        rows.append({"what": "nce+rce fwd+bwd", "impl": "reference composition (autograd)", "dtype": "float32",
                     "shape": f"{batch}x{k}", "ms": 1e3 * base, "speedup": 1.0})
        for backend in backends:
            with robustfast.use_backend(backend):
                seconds, _ = median_seconds(functools.partial(_fused, logits, labels), device, repeats)
            rows.append({"what": "nce+rce fwd+bwd", "impl": f"fused ({backend})", "dtype": "float32",
                         "shape": f"{batch}x{k}", "ms": 1e3 * seconds, "speedup": base / seconds})
    return rows


def accuracy_rows(rates, epochs: int, device: torch.device) -> list[dict]:
    from robustfast.losses.noisy import run as noisy_run

    rows = []
    for rate in rates:
        for row in noisy_run(losses=("ce", "nce+rce"), rate=rate, epochs=epochs, device=str(device),
                             progress=False):
            rows.append({"what": "digits, symmetric noise", **row})
    return rows


def run(batch: int, repeats: int, device: str, accuracy: bool, results: str) -> None:
    dev = resolve_device(device)
    rows = loss_rows(dev, batch, (10, 100, 1000), repeats)
    print(table(rows, ["what", "impl", "dtype", "shape", "ms", "speedup"]), "\n")
    if accuracy:
        acc = accuracy_rows((0.4, 0.6, 0.8), epochs=40, device=dev)
        print(table(acc, ["what", "loss", "rate", "realised_rate", "test_acc"]), "\n")
        rows += acc
    print(f"wrote {save(rows, dev, 'losses', results)}")
