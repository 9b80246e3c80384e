"""Per-sample LID of a point set from the command line: loading the points, the log-scale summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustfast.lid.estimate import gmean, lid, log_var


def load_points(data: str) -> torch.Tensor:
    """digits (8×8 images as 64-D points), gaussian (1,797 × 64 standard normal), or an N×D .npy / .pt file."""
    if data == "digits":
        from robustfast.data import digits

        return torch.cat([digits(split).tensors[0] for split in ("train", "test")]).flatten(1)
    if data == "gaussian":
        return torch.randn(1797, 64, generator=torch.Generator().manual_seed(0))
    path = Path(data)
    if path.suffix == ".npy" and path.is_file():
        return torch.from_numpy(np.load(path, allow_pickle=False)).float()
    if path.suffix == ".pt" and path.is_file():
        return torch.load(path, weights_only=True).float()
    raise ValueError(f"data must be digits, gaussian, or an existing .npy / .pt file of an N×D array; got {data!r}")


def summarize(data: str, k: int, estimator: str, form: str, out: str = "") -> dict:
    """Print and return the LID summary of the points `data` names; with `out`, save the per-sample LIDs there."""
    x = load_points(data)
    lids = lid(x, k=k, estimator=estimator, form=form)
    summary = {"n": x.shape[0], "d": x.shape[1], "gmean": gmean(lids).item(), "log_var": log_var(lids).item(),
               "min": lids.min().item(), "max": lids.max().item()}
    print(f"{data}: {summary['n']} points × {summary['d']} features, {estimator} LID ({form}, k = {k}): "
          f"geometric mean {summary['gmean']:.3f}, var(ln LID) {summary['log_var']:.4f}, "
          f"range [{summary['min']:.3f}, {summary['max']:.3f}]")
    if out:
        np.save(out, lids.numpy())
        print(f"per-sample LIDs written to {out}")
    return summary
