"""`robustfast detect cd` and the cognitive-distillation section of `robustfast demo`: poison digits with each
trigger, train a backdoored SmallCNN (or load one), run CD on the poisoned training set and on a backdoor test
set, print AUROC / AP / TPR / FPR per trigger and draw the masks and cognitive patterns."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from robustfast._util.device import resolve_device
from robustfast._util.plot import pyplot
from robustfast._util.tables import table
from robustfast.backdoor.cd import CognitiveDistillation
from robustfast.backdoor.detect import backdoor_test_set, detect
from robustfast.backdoor.evaluate import evaluate
from robustfast.backdoor.poison import poison
from robustfast.backdoor.train import train_backdoored
from robustfast.data import digits
from robustfast.models import SmallCNN, load_model

COLUMNS = ["trigger", "mode", "set", "n", "poisoned", "auroc", "ap", "tpr", "fpr", "median l1 poisoned",
           "median l1 clean"]


def _subset(images, mask, limit):
    """Every poisoned image and the first clean ones, up to `limit` images in all, in index order."""
    if limit is None or limit >= len(images):
        return images, mask
    clean_keep = torch.cumsum(~mask, 0) <= max(limit - int(mask.sum()), 2)
    keep = mask | (~mask & clean_keep)
    return images[keep], mask[keep]


def draw_patterns(rows: list[tuple[str, torch.Tensor, torch.Tensor]], path: Path) -> Path:
    """One block per (title, images, masks): rows of images, masks and cognitive patterns x⊙m."""
    plt = pyplot()
    cols = max(len(images) for _, images, _ in rows)
    fig, axes = plt.subplots(3 * len(rows), cols, figsize=(1.3 * cols, 3.9 * len(rows)), squeeze=False)
    for b, (title, images, masks) in enumerate(rows):
        for j in range(cols):
            for k in range(3):
                axes[3 * b + k, j].axis("off")
            if j >= len(images):
                continue
            x, m = images[j].cpu(), masks[j].cpu()
            axes[3 * b, j].imshow(x.permute(1, 2, 0).clamp(0, 1).numpy())
            axes[3 * b + 1, j].imshow(m.mean(0).numpy(), cmap="gray", vmin=0, vmax=1)
            axes[3 * b + 2, j].imshow((x * m).permute(1, 2, 0).clamp(0, 1).numpy())
        axes[3 * b, 0].set_title(f"{title}: image / mask / x⊙m", loc="left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(triggers=("badnets", "blend", "wanet"), rate: float = 0.05, mode: str = "logits", model_path=None,
        epochs: int = 10, size: int = 32, width: int = 16, limit: int | None = None, steps: int = 100,
        seed: int = 0, device: str = "auto", out: str | Path = "runs/cd", progress: bool = True,
        gamma: float | None = None, beta: float | None = None) -> list[dict]:
    """Per trigger: poison the digits training set at `rate` (all2one, target 0), train SmallCNN(width) for
    `epochs` (or load `model_path`, used for every trigger), run CD in `mode` on the poisoned training set (at
    most `limit` images: every poisoned one and the first clean ones) and on the backdoor test set; print and
    return the rows, and write <out>/patterns.png. gamma, beta: CD's mask-size and smoothness weights (default:
    the spec's per mode)."""
    dev = resolve_device(device)
    train_set, test_set = digits("train", size=size, channels=3), digits("test", size=size, channels=3)
    rows, figure = [], []
    cd_kwargs = {"mode": mode, "steps": steps, "seed": seed, "gamma": gamma, "beta": beta}
    for trigger in triggers:
        poisoned = poison(*train_set.tensors, trigger, rate=rate, label_mode="all2one", seed=seed)
        if model_path is not None:
            model = load_model(model_path, device=dev)
        else:
            torch.manual_seed(seed)
            model = SmallCNN(num_classes=10, in_channels=3, width=width).to(dev)
            start = time.perf_counter()
            train_backdoored(model, poisoned, epochs=epochs, batch_size=64, lr=0.05, seed=seed, progress=progress)
            print(f"{trigger}: trained SmallCNN-{width} for {epochs} epochs in {time.perf_counter() - start:.1f} s")
        attack = evaluate(model, test_set, poisoned.triggers, targets=poisoned.targets, seed=seed)
        print(f"{trigger}: clean accuracy {attack.clean_acc:.3f}, ASR {attack.asr[0]:.3f}")
        images, mask = _subset(poisoned.images, poisoned.trigger_ids >= 0, limit)
        start = time.perf_counter()
        train_report = detect(model, images, poison_mask=mask, progress=progress, **cd_kwargs)
        test_images, test_mask = backdoor_test_set(*test_set.tensors, poisoned.triggers[0], rate, seed=seed)
        test_images, test_mask = _subset(test_images, test_mask, limit)
        test_report = detect(model, test_images, poison_mask=test_mask, progress=progress,
                             clean_scores=train_report.clean_reference(), **cd_kwargs)
        print(f"{trigger}: CD on {len(images) + len(test_images)} images in {time.perf_counter() - start:.1f} s")
        for name, rep, m in (("train", train_report, mask), ("backdoor test", test_report, test_mask)):
            rows.append({"trigger": trigger, "mode": mode, "set": name, "n": len(m), "poisoned": int(m.sum()),
                         **rep.row(), "median l1 poisoned": round(float(rep.l1[m].median()), 1),
                         "median l1 clean": round(float(rep.l1[~m].median()), 1)})
        shown = torch.cat([(~mask).nonzero().flatten()[:4], mask.nonzero().flatten()[:4]])
        cd = CognitiveDistillation(model, **cd_kwargs)
        figure.append((trigger, images[shown], cd(images[shown].to(dev), index=shown.to(dev))))
    print("\n" + table(rows, COLUMNS))
    print(f"\nwrote {draw_patterns(figure, Path(out) / 'patterns.png')} (first 4 clean, then 4 poisoned per trigger)")
    return rows


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """The cognitive-distillation section of `robustfast demo` (quick: BadNets only, 16×16 digits, 100 images
    per set, 20 steps): returns the AUROC per trigger and set."""
    print("\ncognitive distillation: detect BadNets and Blend samples in 5%-poisoned digits by mask size")
    rows = run(triggers=("badnets",) if quick else ("badnets", "blend"), rate=0.05, epochs=3 if quick else epochs,
               size=16 if quick else 32, limit=100 if quick else 200, steps=20 if quick else 100,
               device=str(device), out=Path(out) / "cd", progress=False)
    return {f"{r['trigger']} {r['set']}": r["auroc"] for r in rows}
