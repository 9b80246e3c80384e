"""`robustfast unlearnable` and the unlearnable-examples section of `robustfast demo`, on the built-in digits.

Searches error-minimizing noise with a fresh surrogate (resumable from <out>/checkpoint), writes the unlearnable
training set to <out> (safetensors + JSON), and optionally trains the same victim on the clean and on the
unlearnable set and prints both clean test accuracies.
"""
from __future__ import annotations

from pathlib import Path

from robustfast._util.device import resolve_device
from robustfast.unlearnable.digits import digits_noise, digits_sets, unlearnable_set, victim_accuracy
from robustfast.unlearnable.io import SIDECAR, save_unlearnable


def run(kind: str = "samplewise", max_rounds: int = 30, out: str = "runs/unlearnable", quantize: bool = True,
        quantization: str = "signed", evaluate: bool = True, epochs: int = 10, seed: int = 0, device: str = "auto",
        progress: bool = True, **settings) -> dict:
    """Noise, unlearnable set on disk and (with `evaluate`) victim accuracies; returns the figures."""
    dev = resolve_device(device)
    out_dir = Path(out)
    train_set, test_set = digits_sets(seed)
    print(f"digits: {len(train_set)} training images, 3x32x32, on {dev}; {kind} error-minimizing noise "
          f"(checkpoint in {out_dir / 'checkpoint'})")
    noise, report = digits_noise(train_set, kind, max_rounds=max_rounds, seed=seed, device=dev,
                                 checkpoint_dir=out_dir / "checkpoint", progress=progress, **settings)
    print(report)
    unlearnable = unlearnable_set(train_set, noise.cpu(), kind, quantize_uint8=quantize, quantization=quantization)
    meta = {"kind": kind, "dataset": "digits 3x32x32 train", "seed": seed, "quantization": quantization if quantize
            else None, "report": report.to_dict(), "settings": settings}
    path = save_unlearnable(out_dir, *unlearnable.tensors, noise, meta, quantized=quantize)
    print(f"unlearnable set written to {path} (+ {path.with_name(SIDECAR).name}, which names it)")
    figures = {"kind": kind, "rounds": report.rounds, "converged": report.converged, "noise_seconds": report.seconds,
               "path": str(path)}
    if evaluate:
        clean = victim_accuracy(train_set, test_set, epochs=epochs, seed=seed, device=dev)
        unlearnable_acc = victim_accuracy(unlearnable, test_set, epochs=epochs, seed=seed, device=dev)
        print(f"clean test accuracy of a small CNN trained {epochs} epochs: on clean data {100 * clean:.1f}%, "
              f"on the unlearnable set {100 * unlearnable_acc:.1f}%")
        figures.update(clean_acc=clean, unlearnable_acc=unlearnable_acc)
    return figures


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """The short run of `robustfast demo`: class-wise noise on digits written to <out>/unlearnable, then clean vs
    unlearnable victims (`quick`: one round and one-epoch victims, a check that it runs); `epochs` is the attack
    section's."""
    print("\nunlearnable examples: class-wise error-minimizing noise on the digits training set")
    return run(kind="classwise", max_rounds=1 if quick else 10, out=str(Path(out) / "unlearnable"),
               epochs=1 if quick else 6, device=str(device), progress=False)
