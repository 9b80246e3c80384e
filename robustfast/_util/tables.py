"""Timing, result files and plain-text tables shared by the benchmarks, the demo and the method reports."""
from __future__ import annotations

import datetime
import json
import statistics
import time
from pathlib import Path

import torch

from robustfast._util.atomic import write_json
from robustfast._util.device import device_name, device_slug
from robustfast._version import __version__


def median_seconds(fn, device: torch.device, repeats: int, warmup: int = 1) -> tuple[float, object]:
    """(median wall time of fn() over `repeats` runs after `warmup` runs, the last result), synchronising the
    GPU around each run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def save(rows: list[dict], device: torch.device, suite: str, results: str) -> Path:
    """Append this run to <results>/<device>-<suite>.json (a list of runs) and return the path."""
    path = Path(results) / f"{device_slug(device)}-{suite}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({
        "suite": suite,
        "device": device_name(device),
        "torch": torch.__version__,
        "robustfast": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    })
    return write_json(path, runs, newline=True)


def table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
