"""What `robustfast info` prints: versions, devices, and which backends are built and usable."""
from __future__ import annotations

import os
import platform
import re

import torch

from robustfast import __version__, _backend


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """A short name for benchmark rows: the GPU model, or the CPU model with torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()}, {torch.get_num_threads()} threads"


def device_slug(device: torch.device) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")


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
    return rows
