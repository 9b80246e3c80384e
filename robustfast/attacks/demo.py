"""The attack section of `robustfast demo`: a WRN-10-2 trained on digits (resumable), then PGD-10 (L∞, ε = 8/255)
on its test set: clean and robust accuracy, and attack throughput beside the published-way loop."""
from __future__ import annotations

import functools
from pathlib import Path

from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds
from robustfast.attacks.evaluate import robust_accuracy
from robustfast.attacks.pgd import PGD
from robustfast.attacks.published import pgd_attack
from robustfast.data import digits, loader
from robustfast.models import WideResNet, save_model
from robustfast.training import evaluate, train_classifier

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """Train (or resume) the classifier for `epochs` under <out>/checkpoint, save it to <out>/model.safetensors,
    attack it; {"clean", "robust", "images_per_s", "reference_images_per_s"}. `quick` does not shorten it."""
    dev, out_dir = resolve_device(str(device)), Path(out)
    train_set, test_set = digits("train", size=32, channels=3), digits("test", size=32, channels=3)
    print(f"digits: {len(train_set)} train / {len(test_set)} test images, 3x32x32, on {dev}")

    model = WideResNet(depths=(1, 1, 1), widths=(2, 2, 2)).to(dev)
    print(f"training WRN-10-2 ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters) "
          f"for {epochs} epochs; checkpoints in {out_dir / 'checkpoint'}")
    train_classifier(model, train_set, epochs=epochs, batch_size=64, lr=0.05, checkpoint_dir=out_dir / "checkpoint")
    save_model(model, out_dir / "model.safetensors")
    clean = evaluate(model, test_set)
    print(f"clean accuracy: {100 * clean:.2f}%  (model saved to {out_dir / 'model.safetensors'})")

    attack = PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS)
    result = robust_accuracy(model, loader(test_set, batch_size=128), attack)
    print(f"PGD-{STEPS} L∞ ε=8/255: robust accuracy {100 * result['robust']:.2f}% on {result['n']} test images")

    # robust_accuracy has just run the same attack: no warm-up needed for the timing.
    images, labels = (t[:128].to(dev) for t in test_set.tensors)
    fast = len(images) / median_seconds(functools.partial(attack, images, labels), dev, repeats=1, warmup=0)[0]
    model.eval()
    reference = functools.partial(pgd_attack, model, images, labels, EPS, ALPHA, STEPS)
    slow = len(images) / median_seconds(reference, dev, repeats=1, warmup=0)[0]
    print(f"PGD-{STEPS} throughput, batch 128: robustfast {fast:.0f} images/s, reference loop {slow:.0f} images/s "
          f"({fast / slow:.2f}x)")
    return {"clean": clean, "robust": result["robust"], "images_per_s": fast, "reference_images_per_s": slow}


def train_robust(model, method: str = "pgd-at", *, epochs: int = 8, n: int | None = None, quick: bool = False,
                 checkpoint_dir=None, progress: bool = True) -> dict:
    """The demo's robust recipe, used by `robust_section` and the must-show test: `method` ("pgd-at", "trades"
    with β = 6, ...) on the first `n` digits training images (3×32×32, all by default; 200 held out for the
    checkpoint selection), ε = 0.1, a 5-step attack of α = 0.04, batch 64, SGD lr 0.1 with the cosine rule, no
    augmentation; `quick`: a 1-step attack and 32 held out. Trains `model` in place; train_adversarial's result."""
    from torch.utils.data import TensorDataset

    from robustfast.training import train_adversarial

    images, labels = digits("train", size=32, channels=3).tensors
    n = len(images) if n is None else n
    return train_adversarial(model, TensorDataset(images[:n], labels[:n]), method, eps=0.1, alpha=0.04,
                             steps=1 if quick else 5, epochs=epochs, batch_size=64, lr=0.1, schedule="cosine",
                             val_split=32 if quick else 200, augment=False, checkpoint_dir=checkpoint_dir,
                             progress=progress)


def robust_section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8,
                   quick: bool = False, method: str = "pgd-at") -> dict:
    """PGD-AT (or `method`, e.g. "trades" with β = 6) of a small WideResNet on digits with `train_robust`'s recipe
    (ε = 0.1, resumable under <out>/robust, <out>/robust-<method> for another method; the selected model saved
    there as model.safetensors), then clean, PGD-20, CW∞ and APGD-CE accuracy on the test set;
    {"accuracy": {attack: fraction}, "selected_epoch"}. `quick` trains 1 epoch on 160 images with a 1-step
    attack and evaluates 32 images without APGD (a check that it runs)."""
    from robustfast.attacks.robustness import evaluate_robustness, format_report

    dev = resolve_device(str(device))
    out_dir = Path(out) / ("robust" if method == "pgd-at" else f"robust-{method}")
    test_images, test_labels = digits("test", size=32, channels=3).tensors
    n, n_test, epochs = (160, 32, 1) if quick else (None, len(test_images), epochs)
    print(f"adversarial training ({method}, eps 0.1) of a WRN-10-1 on {n or 'all training'} digits for {epochs} "
          f"epochs; checkpoints in {out_dir}")
    model = WideResNet(depths=(1, 1, 1), widths=(1, 1, 1)).to(dev)
    result = train_robust(model, method, epochs=epochs, n=n, quick=quick, checkpoint_dir=out_dir / "checkpoint")
    save_model(model, out_dir / "model.safetensors")
    # AutoAttack (torchattacks: FAB-T, Square's 5000 queries) and APGD-T's 9 targets take tens of minutes on a
    # CPU: the demo runs AutoAttack's first attack, robustfast's batched APGD-CE; `robustfast evaluate` runs all.
    attacks = ("clean", "pgd20", "cw") if quick else ("clean", "pgd20", "cw", "apgd-ce")
    report = evaluate_robustness(model, (test_images[:n_test], test_labels[:n_test]), attacks, eps=0.1,
                                 out=out_dir / "report.json")
    print(f"selected epoch {result['selected_epoch']} ({result['selected_by']})")
    print(format_report(report))
    return {"accuracy": report["accuracy"], "selected_epoch": result["selected_epoch"]}
