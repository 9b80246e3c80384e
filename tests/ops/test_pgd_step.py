import zlib

import pytest
import torch

import robustfast
from robustfast import _backend
from robustfast.ops import pgd_random_init, pgd_step
from robustfast.reference import pgd_step as reference
from tests.conftest import DEVICE_BACKENDS

SHAPES = [(7, 3, 11, 13), (1, 1023), (5, 17), (13, 3, 8, 8), (2, 3, 37, 41)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# Floor under the flash-attention rule, for values that round differently at a clamp boundary.
ATOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def make_inputs(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    n = shape[0]
    x0 = torch.rand(shape, generator=g, dtype=torch.float64)
    x = (x0 + 0.03 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    grad = torch.randn(shape, generator=g, dtype=torch.float64)
    grad[0] = 0  # a sample whose gradient vanishes
    active = torch.rand(n, generator=g) > 0.25
    alpha = 0.005 + 0.05 * torch.rand(n, generator=g, dtype=torch.float64)
    eps = 0.01 + 0.1 * torch.rand(n, generator=g, dtype=torch.float64)
    cast = [t.to(device=device, dtype=dtype) for t in (x, grad, x0)]
    return cast, active.to(device), alpha.to(device), eps.to(device)


def skip_unsupported(device, backend, dtype):
    if backend == "triton" and device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        pytest.skip("the Triton interpreter has no bf16/fp16 arithmetic")


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_float64_reference(device, backend, norm, dtype, shape):
    skip_unsupported(device, backend, dtype)
    seed = zlib.crc32(repr((shape, norm)).encode())
    (x, grad, x0), active, alpha, eps = make_inputs(shape, dtype, device, seed=seed)
    oracle = reference.pgd_step(x.double(), grad.double(), x0.double(), active, alpha, eps, norm, 0.0, 1.0)
    plain = reference.pgd_step(x, grad, x0, active, alpha, eps, norm, 0.0, 1.0)
    with robustfast.use_backend(backend):
        out = pgd_step(x, grad, x0, alpha=alpha, eps=eps, norm=norm, active=active)
    assert out.dtype == dtype and out.shape == x.shape
    err = (out.double() - oracle).abs().max().item()
    plain_err = (plain.double() - oracle).abs().max().item()
    assert err <= 2 * plain_err + ATOL[dtype], f"{backend}: error {err:.3g} vs plain torch {plain_err:.3g}"
    assert torch.equal(out[~active], x[~active]), "inactive samples must keep x exactly"


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_output_in_ball_and_bounds(device, backend, norm):
    (_, grad, x0), _, _, eps = make_inputs((64, 3, 9, 9), torch.float32, device, seed=1)
    with robustfast.use_backend(backend):
        out = pgd_step(x0, 50 * grad, x0, alpha=1.0, eps=eps, norm=norm, lower=0.0, upper=1.0)
    delta = (out - x0).flatten(1).double()
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert (size <= eps.double() * (1 + 1e-5) + 1e-7).all()
    assert out.min() >= 0 and out.max() <= 1
    assert size[0] == 0, "a zero gradient must not move the sample"
    assert (size[1:] > 0.5 * eps[1:].double()).all(), "a large step must reach far into the ball"


def test_reference_hand_examples():
    x0 = torch.full((1, 3), 0.5, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    on = torch.ones(1, dtype=torch.bool)
    linf = reference.pgd_step(x0, torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64), x0, on,
                              0.1 * one, 0.05 * one, "Linf", 0.0, 1.0)
    assert torch.allclose(linf, torch.tensor([[0.55, 0.45, 0.5]], dtype=torch.float64))
    x0 = torch.full((1, 2), 0.5, dtype=torch.float64)
    l2 = reference.pgd_step(x0, torch.tensor([[3.0, 4.0]], dtype=torch.float64), x0, on, one, 0.5 * one,
                            "L2", 0.0, 1.0)
    assert torch.allclose(l2, torch.tensor([[0.8, 0.9]], dtype=torch.float64))
    clamped = reference.pgd_step(x0, torch.tensor([[1.0, 1.0]], dtype=torch.float64), x0, on, one, 0.8 * one,
                                 "Linf", 0.0, 1.0)
    assert torch.equal(clamped, torch.ones(1, 2, dtype=torch.float64))


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
def test_scalar_and_tensor_eps_agree(device, backend):
    (x, grad, x0), *_ = make_inputs((6, 2, 5, 5), torch.float32, device, seed=2)
    with robustfast.use_backend(backend):
        a = pgd_step(x, grad, x0, alpha=0.01, eps=0.03, norm="L2")
        b = pgd_step(x, grad, x0, alpha=torch.full((6,), 0.01, device=device), eps=torch.tensor(0.03), norm="L2")
    assert torch.equal(a, b)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_memory_layouts(device, backend, norm):
    (x, grad, x0), active, alpha, eps = make_inputs((6, 5, 7, 9), torch.float32, device, seed=5)
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (x, grad, x0)]
    with robustfast.use_backend(backend):
        expected = pgd_step(x, grad, x0, alpha=alpha, eps=eps, norm=norm, active=active)
        both = pgd_step(*cl, alpha=alpha, eps=eps, norm=norm, active=active)
        mixed = pgd_step(cl[0], grad, x0, alpha=alpha, eps=eps, norm=norm, active=active)
        strided = pgd_step(*(t[:, :, :, ::2] for t in (x, grad, x0)), alpha=alpha, eps=eps, norm=norm, active=active)
    assert both.is_contiguous(memory_format=torch.channels_last) and not both.is_contiguous()
    assert torch.allclose(both, expected, atol=1e-6) and torch.allclose(mixed, expected, atol=1e-6)
    oracle = reference.pgd_step(*(t[:, :, :, ::2].double() for t in (x, grad, x0)), active, alpha, eps, norm, 0.0,
                                1.0)
    assert torch.allclose(strided.double(), oracle, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"norm": "L1"}, "norm"),
    ({"eps": -0.1}, "eps"),
    ({"alpha": float("nan")}, "alpha"),
    ({"eps": torch.ones(3)}, "eps"),
    ({"active": torch.ones(4)}, "active"),
    ({"lower": 1.0, "upper": 0.0}, "lower"),
])
def test_bad_arguments(kwargs, match):
    x = torch.rand(4, 3)
    args = {"alpha": 0.1, "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        pgd_step(x, torch.randn(4, 3), x, **args)


def test_mismatched_tensors():
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="grad"):
        pgd_step(x, torch.randn(4, 2), x, alpha=0.1, eps=0.1)
    with pytest.raises(ValueError, match="x0"):
        pgd_step(x, torch.randn(4, 3), x.double(), alpha=0.1, eps=0.1)


def test_forced_backend_that_cannot_serve_raises():
    x = torch.rand(4, 3)
    with robustfast.use_backend("cuda"), pytest.raises(robustfast.BackendUnavailable, match="cuda"):
        pgd_step(x, torch.randn(4, 3), x, alpha=0.1, eps=0.1)


def test_backend_env_var(monkeypatch):
    monkeypatch.setenv("ROBUSTFAST_BACKEND", "reference")
    assert _backend.requested() == "reference"
    monkeypatch.setenv("ROBUSTFAST_BACKEND", "fastest")
    with pytest.raises(ValueError, match="ROBUSTFAST_BACKEND"):
        _backend.requested()


def test_auto_prefers_cpp_on_cpu():
    expected = "cpp" if _backend.extension() is not None else "reference"
    assert _backend.choose("pgd_step", torch.device("cpu")) == expected


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] in ("cpp", "cuda")])
def test_opcheck_extension_op(device, backend):
    (x, grad, x0), active, alpha, eps = make_inputs((5, 3, 7, 7), torch.float32, device, seed=3)
    for norm in ("Linf", "L2"):
        args = (x, grad, x0, active, alpha.float(), eps.float(), norm, 0.0, 1.0)
        torch.library.opcheck(getattr(torch.ops.robustfast, f"_pgd_step_{backend}").default, args)
        with robustfast.use_backend(backend):
            torch.library.opcheck(torch.ops.robustfast.pgd_step.default, args)


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] == "triton"])
def test_opcheck_triton_op(device, backend):
    (x, grad, x0), active, alpha, eps = make_inputs((5, 3, 7, 7), torch.float32, device, seed=4)
    # Under the CPU interpreter Triton dereferences fake tensors, so only the schema is checked there.
    utils = ("test_schema",) if device.type == "cpu" else ("test_schema", "test_autograd_registration",
                                                          "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(torch.ops.robustfast._pgd_step_triton.default,
                          (x, grad, x0, active, alpha.float(), eps.float(), "L2", 0.0, 1.0), test_utils=utils)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_random_init_is_uniform_in_the_ball(norm):
    n, d, eps = 4000, 3, 0.1
    x0 = torch.full((n, d), 0.5, dtype=torch.float64)
    start = pgd_random_init(x0, eps=eps, norm=norm, generator=torch.Generator().manual_seed(0))
    delta = start - x0
    if norm == "Linf":
        assert delta.abs().max() <= eps
        assert abs(delta.mean().item()) < 3e-3
        assert delta.std().item() == pytest.approx(eps / 3**0.5, rel=0.03)
    else:
        radius = delta.norm(dim=1) / eps
        assert radius.max() <= 1 + 1e-12
        # uniform in a d-ball: radius**d is uniform on [0, 1]
        assert (radius**d).mean().item() == pytest.approx(0.5, abs=0.02)


def test_random_init_seeded_and_clamped():
    x0 = torch.rand(8, 3, 5, 5)
    a = pgd_random_init(x0, eps=0.5, generator=torch.Generator().manual_seed(7))
    b = pgd_random_init(x0, eps=0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
