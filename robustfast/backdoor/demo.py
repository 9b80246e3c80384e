"""`robustfast poison` and the backdoor section of `robustfast demo`: poison digits with a multi-trigger attack,
train a small CNN on it, print clean accuracy, the ASR of every trigger and the cross-activation matrix."""
from __future__ import annotations

import time
from pathlib import Path

from robustfast.backdoor.evaluate import BackdoorReport, evaluate
from robustfast.backdoor.iad import InputAware
from robustfast.backdoor.poison import as_triggers, poison
from robustfast.backdoor.train import train_backdoored
from robustfast._util.device import resolve_device
from robustfast._util.tables import table
from robustfast.data import digits
from robustfast.models import SmallCNN

DEMO_TRIGGERS = ("badnets", "blend", "sig", "trojan")


def _fit_learned_triggers(triggers, images, seed: int) -> None:
    for trig in triggers:
        if isinstance(trig, InputAware):  # learn the input-aware trigger on the data at hand
            start = time.perf_counter()
            losses = trig.fit(images, epochs=3, seed=seed)
            print(f"trained the IAD pattern and mask networks: diversity loss {losses[0]:.2f} -> {losses[-1]:.2f} "
                  f"in {time.perf_counter() - start:.1f} s")


def _attack(train_set, test_set, triggers, settings: dict, width: int, epochs: int, dev, progress: bool,
            quiet: bool = False) -> BackdoorReport:
    """Poison, train a fresh SmallCNN, evaluate every trigger (a hybrid: the composite and each component)."""
    start = time.perf_counter()
    poisoned = poison(*train_set.tensors, triggers, **settings)
    if not quiet:
        print(f"poisoned {len(poisoned.poison_indices)} of {len(poisoned)} digits ({settings['multi']}, "
              f"{settings['label_mode']}, {poisoned.config['per_trigger']} per trigger) with "
              f"{', '.join(t.name for t in poisoned.triggers)} in {time.perf_counter() - start:.2f} s")
    model = SmallCNN(num_classes=10, in_channels=3, width=width).to(dev)
    start = time.perf_counter()
    train_backdoored(model, poisoned, epochs=epochs, batch_size=64, lr=0.05, seed=settings["seed"],
                     progress=progress)
    if not quiet:
        print(f"trained SmallCNN-{width} for {epochs} epochs in {time.perf_counter() - start:.1f} s")
    eval_triggers, targets = poisoned.triggers, poisoned.targets
    if settings["multi"] == "hybrid":  # the composite and each component alone, toward the composite's target
        eval_triggers = poisoned.triggers + poisoned.triggers[0].parts
        targets = targets * len(eval_triggers)
    return evaluate(model, test_set, eval_triggers, target=settings["target"], label_mode=settings["label_mode"],
                    seed=settings["seed"], targets=targets)


def run(triggers=DEMO_TRIGGERS, rate: float = 0.1, label_mode: str = "all2random", multi: str = "parallel",
        target: int = 0, epochs: int = 10, size: int = 16, width: int = 16, seed: int = 0, device: str = "auto",
        overlap: float | None = None, progress: bool = False) -> BackdoorReport:
    """Poison the digits training set (3×size×size) with `triggers` at `rate` each (an IAD trigger is first
    trained on the training images), train SmallCNN(width) for `epochs`, and evaluate on the clean test set and
    one poisoned copy per trigger. In sequential mode a model is also trained after each earlier stage, and the
    ASR of every trigger present is printed per stage, to show overwriting."""
    dev = resolve_device(device)
    train_set, test_set = digits("train", size=size, channels=3), digits("test", size=size, channels=3)
    triggers = as_triggers(list(triggers), seed)
    _fit_learned_triggers(triggers, train_set.tensors[0].to(dev), seed)
    settings = {"rate": rate, "target": target, "label_mode": label_mode, "multi": multi, "seed": seed}
    if overlap is not None:
        settings["overlap"] = overlap
    if multi == "sequential" and len(triggers) > 1:
        # The same seed draws the same earlier rounds, so a prefix of the triggers is an earlier stage.
        rows = []
        for stage in range(1, len(triggers)):
            early = _attack(train_set, test_set, triggers[:stage], settings, width, epochs, dev, progress, True)
            rows.append({"after stage": stage, "clean": early.clean_acc,
                         **{f"ASR {k} {n}": a for k, (n, a) in enumerate(zip(early.names, early.asr, strict=True))}})
        print("\nsequential stages: ASR of every trigger present after each earlier stage")
        print(table(rows, ["after stage", "clean", *[f"ASR {k} {t.name}" for k, t in enumerate(triggers[:-1])]]))
    report = _attack(train_set, test_set, triggers, settings, width, epochs, dev, progress)
    print("\nclean accuracy and attack success rate per trigger:")
    print(report.asr_table())
    print("\ncross-activation: share of each row's test images predicted as each class")
    print(report.cross_table())
    return report


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """The backdoor section of `robustfast demo` (quick: one epoch, a check that it runs); returns the clean
    accuracy and each trigger's ASR. Writes nothing under `out`; `epochs` is the attack section's."""
    print("\nbackdoors: BadNets, Blend, SIG and Trojan each poison 10% of the digits, each toward its own class")
    report = run(epochs=1 if quick else 10, device=str(device))
    return {"clean": report.clean_acc, "asr": dict(zip(report.names, report.asr, strict=True))}
