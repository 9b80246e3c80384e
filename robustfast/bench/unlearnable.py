"""`robustfast bench unlearnable`: the error-minimizing noise search, robustfast against the loop written the
published way (robustfast.unlearnable.published), same surrogate initialisation, data and settings, run to the
stop test or the round cap: rounds/s, total time and their ratios. On a GPU with bf16, a row with bf16 autocast
is added.

Data: scikit-learn's 1,797 digits (train and test splits) at 3×32×32, tiled to n images, each copy shifted by a
seeded random translation of up to 2 pixels (zero padding), with the digits' labels: real images, so the stop
test can pass.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from robustfast.bench.pgd import bf16_pays_off
from robustfast._util.device import resolve_device
from robustfast._util.tables import save, table
from robustfast.data import digits
from robustfast.models import ResNet18, SmallCNN
from robustfast.unlearnable.published import error_minimizing_noise_reference
from robustfast.unlearnable import error_minimizing_noise

MODELS = ("smallcnn", "resnet18")


def tiled_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (3×32×32, [0, 1]) and labels: all digits, tiled, each copy translated by up to ±2 pixels."""
    parts = [digits(split, size=32, channels=3).tensors for split in ("train", "test")]
    base, base_labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    idx = torch.arange(n) % len(base)
    g = torch.Generator().manual_seed(seed)
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    padded = F.pad(base, (2, 2, 2, 2))
    out = torch.empty((n, 3, 32, 32))
    for i in range(n):
        dy, dx = (2 + shifts[i]).tolist()
        out[i] = padded[idx[i], :, dy:dy + 32, dx:dx + 32]
    return out, base_labels[idx].clone()


def surrogate(model: str, seed: int = 0) -> torch.nn.Module:
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SmallCNN(num_classes=10, in_channels=3, width=16) if model == "smallcnn" else ResNet18(num_classes=10)


def _row(impl, kind, model, device, n, errors, seconds, settings) -> dict:
    return {"what": f"{kind} noise, {model}", "impl": impl, "device": str(device), "dtype": "float32",
            "shape": f"{n}x3x32x32", "steps": settings["steps"], "rounds": len(errors),
            "stop test": "passed" if errors and errors[-1] < settings["stop_error"] else "cap",
            "final error": errors[-1], "total s": seconds, "rounds/s": len(errors) / seconds}


def rows(n: int, kind: str, model: str, max_rounds: int, device: torch.device, **settings) -> list[dict]:
    images, labels = tiled_digits(n)
    settings = {"steps": 20 if kind == "samplewise" else 1, "stop_error": 0.01, **settings}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = []
    variants = {"robustfast": {}}
    if bf16_pays_off(device):
        variants["robustfast bf16"] = {"amp": True}
    for impl, options in variants.items():
        start = time.perf_counter()
        _, report = error_minimizing_noise(surrogate(model).to(device), images.to(device), labels.to(device), kind,
                                           max_rounds=max_rounds, progress=False, **options, **settings)
        sync()
        row = _row(impl, kind, model, device, n, report.errors, time.perf_counter() - start, settings)
        out.append({**row, "dtype": "bf16 autocast" if options else "float32"})
    start = time.perf_counter()
    _, errors = error_minimizing_noise_reference(surrogate(model).to(device), images, labels, kind,
                                                 max_rounds=max_rounds, device=device, **settings)
    sync()
    out.append(_row("reference loop", kind, model, device, n, errors, time.perf_counter() - start, settings))
    ref = out[-1]
    for r in out:
        r["time vs reference"] = ref["total s"] / r["total s"]
        r["rounds/s vs reference"] = r["rounds/s"] / ref["rounds/s"]
    return out


def run(n: int, kind: str, model: str, max_rounds: int, batch_size: int, device: str, quick: bool,
        results: str) -> list[dict]:
    dev = resolve_device(device)
    if quick:
        n, max_rounds = min(n, 1024), min(max_rounds, 2)
    found = rows(n, kind, model, max_rounds, dev, batch_size=batch_size)
    print(table(found, ["what", "impl", "device", "dtype", "shape", "steps", "rounds", "stop test", "final error",
                        "total s", "rounds/s", "time vs reference", "rounds/s vs reference"]))
    if not quick:
        print(f"\nwrote {save(found, dev, 'unlearnable', results)}")
    return found
