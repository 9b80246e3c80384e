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
