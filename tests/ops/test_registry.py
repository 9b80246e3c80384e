"""Every registered op × every backend available here × the sample inputs and dtypes the op declares, against its
reference (flash-attention's rule: error vs float64 at most 2× plain torch's in the same dtype, plus a floor), and
torch.library.opcheck on every op, public and per kernel, Triton through the interpreter."""
from pathlib import Path

import pytest
import torch

import robustfast
import robustfast.ops
from robustfast import _backend
from tests.conftest import DEVICES

# Floor relative to the output's magnitude, for values that round differently (a clamp boundary, a reduction order).
FLOOR = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def interpreted(device, backend) -> bool:
    return backend == "triton" and device.type == "cpu"


def cases():
    for name, op in sorted(_backend.OPS.items()):
        for device in DEVICES:
            for backend in _backend.available_for(op, device):
                for dtype in op.dtypes:
                    marks = ()
                    if interpreted(device, backend) and dtype in (torch.bfloat16, torch.float16):
                        marks = pytest.mark.skip(reason="the Triton interpreter has no bf16/fp16 arithmetic")
                    yield pytest.param(name, device, backend, dtype, marks=marks,
                                       id=f"{name}-{device.type}-{backend}-{str(dtype)[6:]}")


def as_float64(args):
    return tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def test_every_op_declares_samples():
    assert {"pgd_step", "robust_loss", "robust_loss_backward", "knn_lid", "knn_lid_backward",
            "apply_triggers"} <= set(_backend.OPS)
    for op in _backend.OPS.values():
        assert op.samples is not None and op.dtypes, f"{op.name} declares no sample inputs"


@pytest.mark.parametrize("name,device,backend,dtype", list(cases()))
def test_backend_matches_the_reference(name, device, backend, dtype):
    op = _backend.OPS[name]
    ref = op.kernels["reference"]
    for args in op.samples(device, dtype):
        oracle = as_tuple(ref(*as_float64(args)))
        plain = as_tuple(ref(*args))
        with robustfast.use_backend(backend):
            out = as_tuple(op.call(*args))
        assert len(out) == len(oracle)
        for o, p, want in zip(out, plain, oracle, strict=True):
            assert o.shape == want.shape and o.dtype == p.dtype, f"{name}/{backend}: {o.shape} {o.dtype}"
            if not o.is_floating_point():
                assert torch.equal(o.cpu(), want.cpu()), f"{name}/{backend}: integer outputs differ"
                continue
            if o.numel() == 0:
                continue
            err = (o.double() - want).abs().max().item()
            plain_err = (p.double() - want).abs().max().item()
            floor = FLOOR[dtype] * (1 + want.abs().max().item())
            assert err <= 2 * plain_err + floor, f"{name}/{backend}/{dtype}: error {err:.3g} vs plain {plain_err:.3g}"


def opcheck_cases():
    for name, op in sorted(_backend.OPS.items()):
        for device in DEVICES:
            for backend in _backend.available_for(op, device):
                yield pytest.param(name, device, backend, id=f"{name}-{device.type}-{backend}")


@pytest.mark.parametrize("name,device,backend", list(opcheck_cases()))
def test_opcheck(name, device, backend):
    """The public op on each backend, and each kernel op on its own (Triton through the interpreter too: the fakes
    are registered functions, so no kernel runs on fake tensors)."""
    op = _backend.OPS[name]
    args = op.samples(device, torch.float32)[0]
    with robustfast.use_backend(backend):
        torch.library.opcheck(op.call, args)
        if backend != "reference":
            torch.library.opcheck(op.kernel_op(backend), args)


@pytest.mark.parametrize("name", ["robust_loss", "knn_lid"])
def test_opcheck_with_autograd(name):
    op = _backend.OPS[name]
    args = list(op.samples(torch.device("cpu"), torch.float64)[0])
    args[0] = args[0].clone().requires_grad_(True)
    torch.library.opcheck(op.call, tuple(args))


def test_without_the_extension_the_ops_still_run(monkeypatch):
    """The schemas live in Python: with robustfast._C refused, auto serves every op from its reference."""
    monkeypatch.setattr(_backend, "_extension", lambda: (None, "refused for the test"))
    cpu = torch.device("cpu")
    for op in _backend.OPS.values():
        assert "cpp" not in _backend.available_for(op, cpu)
        assert _backend.choose(op, cpu) == "reference"
        op.call(*op.samples(cpu, torch.float32)[0])


def test_forcing_a_backend_an_op_lacks_raises():
    with robustfast.use_backend("cuda"), pytest.raises(robustfast.BackendUnavailable, match="no 'cuda' backend"):
        _backend.choose("robust_loss", torch.device("cpu"))


def test_public_ops_compile_into_one_graph():
    """The fakes and the autograd registration let torch.compile capture an op and its backward without a break."""
    op = _backend.OPS["robust_loss"]
    logits, *rest = op.samples(torch.device("cpu"), torch.float32)[1]
    logits = logits.clone().requires_grad_(True)
    compiled = torch.compile(lambda z: op.call(z, *rest).sum(), backend="aot_eager", fullgraph=True)
    compiled(logits).backward()
    expected = torch.autograd.grad(op.call(logits, *rest).sum(), logits)[0]
    assert torch.equal(logits.grad, expected)
    step = _backend.OPS["pgd_step"]
    args = step.samples(torch.device("cpu"), torch.float32)[0]
    assert torch.equal(torch.compile(step.call, backend="aot_eager", fullgraph=True)(*args), step.call(*args))


def test_every_native_kernel_op_is_registered_by_a_source_file():
    """Each native kernel op has a TORCH_LIBRARY_IMPL in csrc (read from the sources, so the CUDA ones are checked
    on machines that do not build them), and csrc defines no schema of its own."""
    csrc = Path(__file__).resolve().parents[2] / "csrc"
    sources = {p.relative_to(csrc).as_posix(): p.read_text() for p in csrc.rglob("*") if p.suffix in (".cpp", ".cu")}
    key = {"cpp": "CPU", "cuda": "CUDA"}
    for op in _backend.OPS.values():
        for backend in set(op.kernels) & set(_backend.NATIVE):
            impl, block = f'm.impl("_{op.name}_{backend}"', f"TORCH_LIBRARY_IMPL(robustfast, {key[backend]}"
            files = [f for f, text in sources.items() if impl in text and block in text]
            assert files, f"no csrc file registers robustfast::_{op.name}_{backend} on the {key[backend]} key"
    assert not any("TORCH_LIBRARY(" in text for text in sources.values()), "schemas are defined in Python only"
