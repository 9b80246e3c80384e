"""`robustfast bench at`: the adversarial-training step of `train_adversarial` (PGD-AT, TRADES) against the loop
written the way the reference repository runs it, and robustfast's batched APGD-CE / APGD-T against torchattacks'
APGD / APGDT, on the same model and inputs, in one run."""
from __future__ import annotations

import time

import torch
from torch.utils.data import TensorDataset

from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.attacks import APGD
from robustfast.models import WideResNet
from robustfast.training import published, train_adversarial

EPS, ALPHA = 8 / 255, 2 / 255


def _model(depths, widths, device):
    torch.manual_seed(0)
    return WideResNet(depths, widths).to(device)


def at_rows(device, depths, widths, batch_size, batches, steps, note) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    images = torch.rand(batch_size * batches, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (len(images),), generator=g)
    shape = f"{batches}x{batch_size}x3x32x32"
    name = f"WRN depths {depths} widths {widths}"
    rows = []
    for method, step in (("pgd-at", published.pgd_at_step), ("trades", published.trades_step)):
        warm = _model(depths, widths, device)  # one untimed batch of each: first-call costs stay out of the rows
        train_adversarial(warm, TensorDataset(images[:batch_size], labels[:batch_size]), method, steps=1, epochs=1,
                          batch_size=batch_size, val_split=0, augment=False, progress=False, device=device)
        step(warm, torch.optim.SGD(warm.parameters(), lr=0.1), images[:batch_size].to(device),
             labels[:batch_size].to(device), EPS, ALPHA, 1)
        ours = _model(depths, widths, device)
        t0 = time.perf_counter()
        train_adversarial(ours, TensorDataset(images, labels), method, eps=EPS, alpha=ALPHA, steps=steps, epochs=1,
                          batch_size=batch_size, val_split=0, augment=False, progress=False, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        fast = time.perf_counter() - t0
        theirs = _model(depths, widths, device)
        opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        for i in range(batches):
            idx = order[i * batch_size:(i + 1) * batch_size]
            step(theirs, opt, images[idx].to(device), labels[idx].to(device), EPS, ALPHA, steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        slow = time.perf_counter() - t0
        for impl, seconds in (("train_adversarial", fast), ("reference-style loop", slow)):
            rows.append({"what": f"{method} step, {steps}-step attack, {name}", "impl": impl, "dtype": "float32",
                         "shape": shape, "s": seconds, "images/s": len(images) / seconds,
                         "vs reference": slow / seconds, "note": note})
    return rows


def apgd_rows(device, depths, widths, batch_size, steps, repeats, note) -> list[dict]:
    import torchattacks

    model = _model(depths, widths, device).eval()
    images = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)
    rows = []
    for loss, peer in (("ce", torchattacks.APGD(model, norm="Linf", eps=EPS, steps=steps, seed=0, loss="ce")),
                       ("dlr-targeted", torchattacks.APGDT(model, norm="Linf", eps=EPS, steps=steps, seed=0,
                                                          n_classes=10))):
        ours = APGD(model, eps=EPS, steps=steps, loss=loss)
        timed = {}
        for impl, attack in (("robustfast", ours), ("torchattacks", peer)):
            seconds, adv = median_seconds(lambda a=attack: a(images, labels), device, repeats)
            with torch.no_grad():
                acc = (model(adv).argmax(1) == labels).float().mean().item()
            timed[impl] = seconds
            rows.append({"what": f"{'APGD-T (9 targets)' if loss != 'ce' else 'APGD-CE'} {steps} steps",
                         "impl": impl, "dtype": "float32", "shape": f"{batch_size}x3x32x32", "s": seconds,
                         "images/s": batch_size / seconds, "robust acc": acc, "note": note})
        rows[-2]["vs torchattacks"] = timed["torchattacks"] / timed["robustfast"]
        rows[-1]["vs torchattacks"] = 1.0
    return rows


def run(device: str = "auto", depths=(1, 1, 1), widths=(2, 2, 2), batch_size: int = 128, batches: int = 4,
        steps: int = 10, apgd_steps: int = 20, repeats: int = 1, note: str = "", results: str = "benchmarks/results",
        save_rows: bool = True) -> list[dict]:
    dev = resolve_device(device)
    rows = at_rows(dev, tuple(depths), tuple(widths), batch_size, batches, steps, note)
    print(table(rows, ["what", "impl", "shape", "s", "images/s", "vs reference"]), "\n")
    apgd = apgd_rows(dev, tuple(depths), tuple(widths), batch_size, apgd_steps, repeats, note)
    print(table(apgd, ["what", "impl", "shape", "s", "images/s", "robust acc", "vs torchattacks"]))
    if save_rows:
        print(f"\nwrote {save(rows + apgd, dev, 'at', results)}")
    return rows + apgd

