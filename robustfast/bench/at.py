"""`robustfast bench at`: the adversarial-training step of `train_adversarial` (PGD-AT, TRADES) against the loop
written the way the reference repository runs it, and robustfast's batched APGD-CE / APGD-T against torchattacks'
APGD / APGDT, on the same model and inputs, in one run."""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.data import TensorDataset

from robustfast._util.device import resolve_device
from robustfast._util.tables import save, table
from robustfast.attacks import APGD
from robustfast.models import WideResNet
from robustfast.training import published, train_adversarial

EPS, ALPHA = 8 / 255, 2 / 255


def _model(depths, widths, device):
    torch.manual_seed(0)
    return WideResNet(depths, widths).to(device)


def at_variants(device) -> list[tuple[str, dict]]:
    """train_adversarial's settings timed against the reference-style loop: eager, channels_last, compile, both,
    and on a GPU bf16 autocast + channels_last + compile."""
    variants = [("train_adversarial", {}), ("train_adversarial, channels_last", {"channels_last": True}),
                ("train_adversarial, compile", {"compile": True}),
                ("train_adversarial, compile + channels_last", {"compile": True, "channels_last": True})]
    if device.type == "cuda":
        variants.append(("train_adversarial, bf16 + compile + channels_last",
                         {"amp": True, "compile": True, "channels_last": True}))
    return variants


def at_rows(device, depths, widths, batch_size, batches, steps, note, repeats: int = 1) -> list[dict]:
    """Per method, every variant of `at_variants` and the reference-style loop on the same model (same seed),
    batches and attack steps. Each train_adversarial run trains 2 epochs over the `batches` batches and the
    second is timed (its `seconds`: compilation and first-call costs stay in the first); the loop takes one
    untimed step, then is timed over the batches. With `repeats`, the runs interleave and each row is the
    median."""
    g = torch.Generator().manual_seed(1)
    images = torch.rand(batch_size * batches, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (len(images),), generator=g)
    data = TensorDataset(images, labels)
    shape = f"{batches}x{batch_size}x3x32x32"
    name = f"WRN depths {depths} widths {widths}"
    rows = []
    for method, step in (("pgd-at", published.pgd_at_step), ("trades", published.trades_step)):
        times: dict[str, list[float]] = {}
        for _ in range(repeats):
            for impl, kw in at_variants(device):
                history = train_adversarial(_model(depths, widths, device), data, method, eps=EPS, alpha=ALPHA,
                                            steps=steps, epochs=2, batch_size=batch_size, val_split=0,
                                            augment=False, progress=False, device=device, **kw)["history"]
                times.setdefault(impl, []).append(history[-1]["seconds"])
            theirs = _model(depths, widths, device)
            opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
            step(theirs, opt, images[:batch_size].to(device), labels[:batch_size].to(device), EPS, ALPHA, 1)
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(batches):
                idx = order[i * batch_size:(i + 1) * batch_size]
                step(theirs, opt, images[idx].to(device), labels[idx].to(device), EPS, ALPHA, steps)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.setdefault("reference-style loop", []).append(time.perf_counter() - t0)
        slow = statistics.median(times["reference-style loop"])
        for impl, runs in times.items():
            seconds = statistics.median(runs)
            rows.append({"what": f"{method} step, {steps}-step attack, {name}", "impl": impl, "dtype": "float32",
                         "shape": shape, "s": seconds, "images/s": len(images) / seconds,
                         "vs reference": slow / seconds, "runs": runs, "note": note})
    return rows


def _apgd_inputs(device, depths, widths, batch_size, model_path, eps):
    """(model, images, labels, eps, description): the saved model on the first digits test images with their
    labels, or (no path) an untrained WRN on random images labelled with its own predictions."""
    if model_path:
        from robustfast.data import digits
        from robustfast.models import load_model

        model = load_model(model_path, device=device).eval()
        images, labels = (t[:batch_size].to(device) for t in digits("test", size=32, channels=3).tensors)
        return model, images, labels.long(), eps, f"{model_path} on the first {batch_size} digits test images"
    model = _model(depths, widths, device).eval()
    images = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.no_grad():
        labels = model(images).argmax(1)
    return model, images, labels, EPS, "untrained WRN, random images labelled with its own predictions"


def _interleaved(attacks: dict, images, labels, device, repeats: int) -> tuple[dict, dict]:
    """({impl: seconds of each of `repeats` rounds}, {impl: last result}): every round runs every attack once, in
    turn, after one untimed call on two images; on a CPU the time is the process's CPU time, on a GPU wall time
    between synchronisations."""
    cpu = device.type == "cpu"
    clock = time.process_time if cpu else time.perf_counter
    sync = (lambda: None) if cpu else torch.cuda.synchronize
    for attack in attacks.values():
        attack(images[:2], labels[:2])
    times, results = {}, {}
    for _ in range(repeats):
        for impl, attack in attacks.items():
            sync()
            start = clock()
            results[impl] = attack(images, labels)
            sync()
            times.setdefault(impl, []).append(clock() - start)
    return times, results


def apgd_rows(device, depths, widths, batch_size, steps, repeats, note, model_path=None, eps=0.1) -> list[dict]:
    """Batched APGD-CE / APGD-T (default; on the model itself, `fold=False`; without compaction) against
    torchattacks' APGD / APGDT, which get the model as it is given, interleaved over `repeats` rounds. Compaction
    drops the rows of fooled samples, so its gain depends on the model: on an untrained one nearly every sample
    is fooled at the start (the comparison then says little); pass a robust model (`model_path`) to measure it."""
    import torchattacks

    model, images, labels, eps, described = _apgd_inputs(device, depths, widths, batch_size, model_path, eps)
    with torch.no_grad():
        clean = model(images).argmax(1) == labels
    rows = []
    for loss, peer in (("ce", torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, seed=0, loss="ce")),
                       ("dlr-targeted", torchattacks.APGDT(model, norm="Linf", eps=eps, steps=steps, seed=0,
                                                          n_classes=10))):
        attacks = {"robustfast": APGD(model, eps=eps, steps=steps, loss=loss),
                   "robustfast, fold=False": APGD(model, eps=eps, steps=steps, loss=loss, fold=False),
                   "robustfast, compact=False": APGD(model, eps=eps, steps=steps, loss=loss, compact=False),
                   "torchattacks": peer}
        times, advs = _interleaved(attacks, images, labels, device, repeats)
        theirs = statistics.median(times["torchattacks"])
        for impl, runs in times.items():
            seconds = statistics.median(runs)
            with torch.no_grad():
                acc = (clean & (model(advs[impl]).argmax(1) == labels)).float().mean().item()
            rows.append({"what": f"{'APGD-T (9 targets)' if loss != 'ce' else 'APGD-CE'} {steps} steps, eps {eps:.4g}",
                         "impl": impl, "dtype": "float32", "shape": f"{batch_size}x3x32x32", "s": seconds,
                         "clock": "process CPU" if device.type == "cpu" else "wall", "runs": runs,
                         "images/s": batch_size / seconds, "clean acc": clean.float().mean().item(),
                         "robust acc": acc, "vs torchattacks": theirs / seconds, "model": described, "note": note})
    return rows


def run(device: str = "auto", depths=(1, 1, 1), widths=(2, 2, 2), batch_size: int = 128, batches: int = 4,
        steps: int = 10, apgd_steps: int = 20, repeats: int = 1, note: str = "", results: str = "benchmarks/results",
        save_rows: bool = True, apgd_model: str | None = None, apgd_eps: float = 0.1,
        apgd_only: bool = False) -> list[dict]:
    dev = resolve_device(device)
    rows = [] if apgd_only else at_rows(dev, tuple(depths), tuple(widths), batch_size, batches, steps, note, repeats)
    if rows:
        print(table(rows, ["what", "impl", "shape", "s", "images/s", "vs reference"]), "\n")
    apgd = apgd_rows(dev, tuple(depths), tuple(widths), batch_size, apgd_steps, repeats, note, apgd_model, apgd_eps)
    print(f"APGD on {apgd[0]['model']}")
    print(table(apgd, ["what", "impl", "shape", "s", "images/s", "clean acc", "robust acc", "vs torchattacks"]))
    if save_rows:
        print(f"\nwrote {save(rows + apgd, dev, 'at', results)}")
    return rows + apgd

