"""The op registry and its one dispatch: which implementation (triton, cuda, cpp, reference) serves a call.

Each module in robustfast/ops declares its op once with `register_op`: the schema (defined here in Python with
torch.library, so the op exists without robustfast._C), the reference, the kernels per backend, the order `auto`
tries per device type, the fake and the autograd. That gives, for an op `name`:

  robustfast::name            the public op. Its CompositeExplicitAutograd kernel is `dispatch`: it picks a backend
                              from the first argument's device and calls the reference or one kernel op below.
  robustfast::_name_triton    the Triton launcher (kernels/name.py), imported on its first call
  robustfast::_name_cpp       the C++ CPU kernel, and robustfast::_name_cuda the CUDA one: defined here with the
                              public op's schema; the kernels are registered by csrc/cpu/name.cpp (CPU key) and
                              csrc/cuda/name_cuda.cpp (CUDA key) with TORCH_LIBRARY_IMPL. A kernel op whose C++
                              registration is missing (no _C, or a stale build) is reported as unavailable.

`auto` tries the op's order for the device type (CPU: cpp; CUDA: as the op declares), then the reference.
Triton serves CPU tensors only when forced and TRITON_INTERPRET=1 (the tests do this).
`ROBUSTFAST_BACKEND=<name>` or `with robustfast.use_backend(<name>):` forces one backend; a forced backend that
cannot serve the call raises BackendUnavailable, never a silent fallback. Autograd: the backward runs on the
forward's backend where the backward op has a kernel for it, else on that op's reference (plain torch).
Under torch.compile the public op is one node (its fake gives the shapes); it dispatches when the graph runs.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import importlib
import os
from collections.abc import Callable

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


NATIVE = {"cpp": "CPU", "cuda": "CUDA"}  # kernel backends registered by robustfast._C, and their dispatch key
DEFAULT_AUTO = {"cpu": ("cpp",), "cuda": ("triton", "cuda")}
_LIB = torch.library.Library("robustfast", "FRAGMENT")


@dataclasses.dataclass(eq=False)
class Op:
    """One registered op. `call` is the public torch op (robustfast::name), what the Python API calls."""

    name: str
    schema: str
    kernels: dict[str, Callable]  # backend -> implementation, "reference" included
    auto: dict[str, tuple[str, ...]]
    samples: Callable | None = None  # (device, dtype) -> list of argument tuples, for the registry tests
    dtypes: tuple[torch.dtype, ...] = ()
    call: Callable | None = None
    _built: dict = dataclasses.field(default_factory=dict)
    chosen: dict = dataclasses.field(default_factory=dict)  # choose()'s answers, by what they depend on

    def kernel_op(self, backend: str):
        """The torch op of one kernel backend: robustfast::_name_backend."""
        return getattr(torch.ops.robustfast, f"_{self.name}_{backend}").default

    def built(self, backend: str) -> bool:
        """Whether robustfast._C registered this op's kernel for a native backend (cached once _C is loaded)."""
        if backend not in self._built:
            self._built[backend] = torch._C._dispatch_has_kernel_for_dispatch_key(
                f"robustfast::_{self.name}_{backend}", NATIVE[backend])
        return self._built[backend]


OPS: dict[str, Op] = {}


def register_op(name: str, schema: str, *, reference: Callable, fake: Callable, triton: str | None = None,
                native: tuple[str, ...] = (), auto: dict[str, tuple[str, ...]] | None = None,
                backward: Callable | None = None, setup_context: Callable | None = None,
                samples: Callable | None = None, dtypes: tuple[torch.dtype, ...] = ()) -> Op:
    """Define robustfast::name with `schema` ("(Tensor x, ...) -> Tensor") and everything that serves it.

    reference: the plain-torch implementation, taking the schema's arguments. fake: shapes and dtypes of the
    outputs (torch.compile). triton: "module:function" of the Triton launcher, imported on first call. native:
    the backends of `NATIVE` whose kernels csrc registers for robustfast::_name_<backend>. auto: device type ->
    backends `auto` tries in order (default DEFAULT_AUTO, restricted to the op's kernels). backward and
    setup_context: as for torch.library.register_autograd; ctx.backend holds the forward's backend, and a backward
    op is called under use_backend(backward_backend(ctx.backend, its name)).
    """
    extension()  # load robustfast._C first, so that its kernel registrations exist before any lookup
    qualname = f"robustfast::{name}"
    _LIB.define(name + schema)
    kernels = {"reference": reference}
    for backend in ("triton", *native) if triton is not None else native:
        _LIB.define(f"_{name}_{backend}{schema}")
        torch.library.register_fake(f"robustfast::_{name}_{backend}", fake, lib=_LIB)
        if backend == "triton":
            _LIB.impl(f"_{name}_triton", _triton_launcher(triton), "CompositeExplicitAutograd")
        kernels[backend] = getattr(torch.ops.robustfast, f"_{name}_{backend}").default
    order = auto if auto is not None else DEFAULT_AUTO
    op = Op(name, schema, kernels, {d: tuple(b for b in bs if b in kernels) for d, bs in order.items()}, samples,
            dtypes)
    _LIB.impl(name, functools.partial(dispatch, op), "CompositeExplicitAutograd")
    torch.library.register_fake(qualname, fake, lib=_LIB)
    if backward is not None:
        torch.library.register_autograd(qualname, backward, setup_context=_remember_backend(op, setup_context),
                                        lib=_LIB)
    op.call = getattr(torch.ops.robustfast, name).default
    OPS[name] = op
    return op


def _triton_launcher(target: str) -> Callable:
    module, function = target.split(":")

    def launch(*args):
        return getattr(importlib.import_module(module), function)(*args)

    return launch


def _remember_backend(op: Op, setup_context: Callable | None):
    def setup(ctx, inputs, output):
        ctx.backend = choose(op, inputs[0].device)
        if setup_context is not None:
            setup_context(ctx, inputs, output)

    return setup


def backward_backend(forward_backend: str, backward_op: str) -> str:
    """The backend a backward op runs on: the forward's where it has a kernel for it, else its reference."""
    return forward_backend if forward_backend in OPS[backward_op].kernels else "reference"


def why_not_op(op: Op, backend: str, device: torch.device) -> str | None:
    """None when `op` can run on `backend` for a tensor on `device`, else the reason it cannot."""
    if backend not in op.kernels:
        return f"{op.name} has no {backend!r} backend; it has {', '.join(op.kernels)}"
    reason = why_not(backend, device)
    if reason is None and backend in NATIVE and not op.built(backend):
        return f"robustfast._C registers no {backend} kernel for {op.name} (a stale build?); {_REBUILD}"
    return reason


def choose(op: Op | str, device: torch.device) -> str:
    """The backend that serves `op` for a tensor on `device`: the forced one, or the first `auto` can use."""
    op = OPS[op] if isinstance(op, str) else op
    want = requested()
    if device.type == "cpu" and (want == "triton" or "triton" in op.auto.get("cpu", ())):
        return _choose(op, want, device)  # depends on TRITON_INTERPRET too: not cached
    key = (want, device.type, _extension())  # everything else the answer depends on
    backend = op.chosen.get(key)
    if backend is None:
        backend = op.chosen[key] = _choose(op, want, device)
    return backend


def _choose(op: Op, want: str, device: torch.device) -> str:
    if want == "auto":
        return next((b for b in op.auto.get(device.type, ()) if why_not_op(op, b, device) is None), "reference")
    if want not in op.kernels:
        raise BackendUnavailable(f"{op.name} has no {want!r} backend; it has {', '.join(op.kernels)}")
    reason = why_not_op(op, want, device)
    if reason is not None:
        raise BackendUnavailable(f"backend {want!r} cannot run {op.name}: {reason}")
    return want


def dispatch(op: Op, *args):
    """The public op's kernel: run `op` on the backend chosen for its first argument's device."""
    return op.kernels[choose(op, args[0].device)](*args)


def available(device: torch.device) -> list[str]:
    """The backends that can run on `device` here (for `robustfast info` and the tests)."""
    return [b for b in BACKENDS[1:] if why_not(b, device) is None]


def available_for(op: Op | str, device: torch.device) -> list[str]:
    """The backends that can serve `op` on `device` here, reference included."""
    op = OPS[op] if isinstance(op, str) else op
    return [b for b in op.kernels if why_not_op(op, b, device) is None]
