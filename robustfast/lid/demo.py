"""The LID section of `robustfast demo`: per-sample LID of the digits, a histogram PNG, and the log-scale
summaries (geometric mean and var(ln LID), the Fisher–Rao mean and variance)."""
from __future__ import annotations

from pathlib import Path

import torch

from robustfast._util.plot import pyplot
from robustfast.data import digits
from robustfast.lid.estimate import gmean, lid, log_var


def histogram(lids: dict[str, torch.Tensor], path: Path, k: int) -> Path:
    """One PNG with a histogram of per-sample LID per named set (needs the `plot` extra)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for name, values in lids.items():
        ax.hist(values.cpu().numpy(), bins=40, alpha=0.6, label=f"{name} (gmean {gmean(values).item():.1f})")
    ax.set_xlabel(f"LID (MLE, k = {k})")
    ax.set_ylabel("samples")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False,
            k: int = 20, seed: int = 0) -> dict:
    """LID of every digit image (8×8 pixels, 64-D) among all of them, beside as many Gaussian points in 64-D;
    writes <out>/lid_histogram.png and returns the summaries. The points are on the CPU (device, epochs and
    quick do not change this section)."""
    print(f"\nintrinsic dimensionality: per-sample LID (MLE, k = {k})")
    images = torch.cat([digits(split).tensors[0] for split in ("train", "test")]).flatten(1)
    g = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(images.shape, generator=g)
    sets = {"digits (64-D pixels)": lid(images, k=k), "Gaussian (64-D)": lid(gaussian, k=k)}
    path = histogram(sets, Path(out) / "lid_histogram.png", k)
    summary = {name: {"gmean": gmean(v).item(), "log_var": log_var(v).item()} for name, v in sets.items()}
    for name, s in summary.items():
        print(f"LID of {name}, k = {k}: geometric mean {s['gmean']:.2f}, var(ln LID) {s['log_var']:.3f}")
    print(f"histogram of per-sample LID written to {path}")
    return {"png": str(path), **summary}
