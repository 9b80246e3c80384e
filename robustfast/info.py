"""What `robustfast info` prints: versions, devices, and, from the op registry, each op's backends (declared,
and usable on each device here)."""
from __future__ import annotations

import os
import platform

import torch

import robustfast.ops  # noqa: F401  (registers the ops)
from robustfast import __version__, _backend
from robustfast._util.device import device_name


def report() -> list[tuple[str, str]]:
    rows = [
        ("robustfast", __version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (cuda {torch.version.cuda or 'none'})"),
        ("triton", _backend.triton_version() or "not installed"),
        ("robustfast._C", "built" + (" with CUDA kernels" if _backend.extension_has_cuda() else " (CPU kernels)")
         if _backend.extension() is not None else f"unavailable: {_backend.extension_error()}"),
        ("ROBUSTFAST_BACKEND", os.environ.get("ROBUSTFAST_BACKEND", "auto")),
        ("TRITON_INTERPRET", os.environ.get("TRITON_INTERPRET", "0")),
    ]
    devices = [torch.device("cpu")]
    devices += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    for device in devices:
        usable = ", ".join(_backend.available(device))
        rows.append((f"device {device}", f"{device_name(device)}; backends: {usable}"))
    for name, op in sorted(_backend.OPS.items()):
        usable = "; ".join(f"{d.type}: {', '.join(_backend.available_for(op, d))}" for d in devices[:2])
        rows.append((f"op {name}", f"backends {', '.join(op.kernels)} | usable here: {usable}"))
    return rows
