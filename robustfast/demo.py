"""`robustfast demo` / `make demo`: the main jobs on the built-in digits, one section each.

1. attacks: trains a WRN-10-2 (resumable: rerunning continues from the last finished epoch), reports clean
   accuracy, attacks the test set with PGD-10 (L∞, ε = 8/255), reports robust accuracy and attack throughput
   beside the plain-PyTorch reference loop;
2. noisy labels: a small CNN trained with CE and with NCE+RCE on digits whose training labels are 60% symmetric
   noise; clean test accuracy of each;
3. unlearnable examples: class-wise error-minimizing noise, then a model trained on the unlearnable digits
   beside one trained on the clean digits;
4. backdoors: BadNets, Blend, SIG and Trojan each poison 10% of the digits toward their own class; clean
   accuracy, ASR per trigger and the cross-activation matrix of a small CNN trained on them;
5. intrinsic dimensionality: per-sample LID of the digits beside Gaussian points, a histogram PNG.
`quick=True` shrinks sections 2-4 to a check that they run (the tests use it).
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from robustfast import noisy
from robustfast.attacks import PGD, robust_accuracy
from robustfast.backdoor.demo import section as backdoor_section
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, table
from robustfast.data import digits, loader
from robustfast.lid.demo import run_section as lid_section
from robustfast.models import WideResNet, save_model
from robustfast.attacks.published import pgd_attack
from robustfast.training import evaluate, train_classifier
from robustfast.unlearnable.demo import section as unlearnable_section

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


def run(epochs: int, device: str, out: str, quick: bool = False) -> dict:
    """Every section in turn; returns {"attacks", "noisy", "unlearnable", "backdoor", "lid"}, each with its
    figures."""
    dev = resolve_device(device)
    out_dir = Path(out)
    results = {"attacks": attack_section(epochs, dev, out_dir)}
    results["noisy"] = noisy_section(dev, epochs=1 if quick else 40)
    print("\nunlearnable examples: class-wise error-minimizing noise on the digits training set")
    results["unlearnable"] = unlearnable_section(str(dev), str(out_dir / "unlearnable"), quick=quick)
    print("\nbackdoors: BadNets, Blend, SIG and Trojan each poison 10% of the digits, each toward its own class")
    results["backdoor"] = backdoor_section(str(dev), quick=quick)
    print("\nintrinsic dimensionality: per-sample LID (MLE, k = 20)")
    results["lid"] = lid_section(out_dir)
    return results


def attack_section(epochs: int, dev: torch.device, out_dir: Path) -> dict:
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


def noisy_section(dev: torch.device, epochs: int) -> dict:
    print(f"\nnoisy labels: 60% symmetric noise on the digits training labels, SmallCNN, {epochs} epochs per loss")
    rows = noisy.run(losses=("ce", "nce+rce"), rate=0.6, epochs=epochs, device=str(dev), progress=False)
    print(table(rows, ["loss", "noise", "rate", "realised_rate", "test_acc"]))
    return {row["loss"]: row["test_acc"] for row in rows}
