"""Which implementation serves an op call: triton, cuda, cpp or reference.

`auto` picks, per call, from the tensor's device:
  CUDA tensor -> the op's preferred GPU kernel (triton, or cuda where the op says its CUDA kernel is faster),
                 then the other one, then the reference;
  CPU tensor  -> cpp when robustfast._C is built, else the reference.
Triton serves CPU tensors only when forced and TRITON_INTERPRET=1 (the tests do this).
`ROBUSTFAST_BACKEND=<name>` or `with robustfast.use_backend(<name>):` forces one backend; a forced backend that
cannot serve the call raises BackendUnavailable, never a silent fallback.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os

import torch

BACKENDS = ("auto", "triton", "cuda", "cpp", "reference")
_REBUILD = "rebuild it with `pip install --no-build-isolation -e .` (or `make install`)"

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("robustfast_backend", default=None)


class BackendUnavailable(RuntimeError):
    """A forced backend cannot serve this call."""


def _check_name(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return name


def requested() -> str:
    """The backend asked for by `use_backend` (innermost) or ROBUSTFAST_BACKEND, else 'auto'."""
    forced = _forced.get()
    if forced is not None:
        return forced
    return _check_name(os.environ.get("ROBUSTFAST_BACKEND", "auto"), "ROBUSTFAST_BACKEND")


@contextlib.contextmanager
def use_backend(name: str):
    """Force `name` for every op called inside the block: `with robustfast.use_backend("cpp"): ...`."""
    token = _forced.set(_check_name(name, "use_backend(name)"))
    try:
        yield
    finally:
        _forced.reset(token)


@functools.cache
def _extension():
    """(module, None) when robustfast._C loads, else (None, why not)."""
    try:
        build_info = importlib.import_module("robustfast._build_info")
    except ImportError:
        return None, f"robustfast._C was never built; {_REBUILD}"
    if torch.__version__ != build_info.TORCH_VERSION:
        return None, (
            f"robustfast._C was built against torch {build_info.TORCH_VERSION} but torch {torch.__version__} "
            f"is running; {_REBUILD}"
        )
    try:
        return importlib.import_module("robustfast._C"), None
    except ImportError as exc:
        return None, f"robustfast._C failed to load ({exc}); {_REBUILD}"


def extension():
    """The loaded robustfast._C module, or None."""
    return _extension()[0]


def extension_error() -> str | None:
    return _extension()[1]


def extension_has_cuda() -> bool:
    ext = extension()
    return ext is not None and ext.with_cuda()


@functools.cache
def triton_version() -> str | None:
    try:
        return importlib.import_module("triton").__version__
    except ImportError:
        return None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def why_not(backend: str, device: torch.device) -> str | None:
    """None when `backend` can run on `device`, else the reason it cannot."""
    if backend == "reference":
        return None
    if backend == "triton":
        if triton_version() is None:
            return "triton is not installed"
        if device.type == "cuda" or (device.type == "cpu" and _interpreting()):
            return None
        return f"triton runs CUDA tensors, or CPU tensors under TRITON_INTERPRET=1; this tensor is on {device}"
    if backend == "cpp":
        if device.type != "cpu":
            return f"the cpp backend runs CPU tensors; this tensor is on {device}"
        return extension_error()
    if backend == "cuda":
        if device.type != "cuda":
            return f"the cuda backend runs CUDA tensors; this tensor is on {device}"
        if extension() is None:
            return extension_error()
        return None if extension_has_cuda() else "robustfast._C was built without CUDA kernels"
    raise ValueError(f"unknown backend {backend!r}")


def choose(op: str, device: torch.device, implemented: tuple[str, ...], gpu_order=("triton", "cuda")) -> str:
    """The backend that serves `op` on `device`. `implemented` lists the op's backends besides reference."""
    want = requested()
    if want == "auto":
        order = gpu_order if device.type == "cuda" else ("cpp",)
        return next((b for b in order if b in implemented and why_not(b, device) is None), "reference")
    if want != "reference" and want not in implemented:
        raise BackendUnavailable(f"{op} has no {want!r} backend; it has {', '.join((*implemented, 'reference'))}")
    reason = why_not(want, device)
    if reason is not None:
        raise BackendUnavailable(f"backend {want!r} cannot run {op}: {reason}")
    return want


def available(device: torch.device) -> list[str]:
    """The backends that can run on `device` here (for `robustfast info` and the tests)."""
    return [b for b in BACKENDS[1:] if why_not(b, device) is None]
