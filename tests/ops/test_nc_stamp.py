"""nc_stamp: every backend against the float64 reference, forward and backward through autograd, on fresh seeded
random inputs of odd shapes; the reference's closed-form backward against autograd of its own forward."""
import pytest
import torch

import robustfast
from robustfast.ops import nc_stamp
from robustfast.reference import nc_stamp as reference
from tests.conftest import DEVICE_BACKENDS


def make(b, c, h, w, k, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    mask = torch.rand(k, h, w, generator=g, dtype=torch.float64)
    pattern = torch.rand(k, c, h, w, generator=g, dtype=torch.float64)
    weights = torch.randn(k * b, c, h, w, generator=g, dtype=torch.float64)
    return [t.to(device, dtype) for t in (x, mask, pattern)], weights.to(device)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(4, 3, 9, 7, 10), (1, 1, 31, 3, 2)], ids=["digits-like", "prime-plane"])
def test_forward_and_backward_match_the_reference(device, backend, dtype, shape):
    (x, mask, pattern), weights = make(*shape, dtype, device, seed=shape[2])
    leaves = [t.clone().requires_grad_(True) for t in (x, mask, pattern)]
    with robustfast.use_backend(backend):
        out = nc_stamp(*leaves)
        (out.double() * weights).sum().backward()
    want_leaves = [t.detach().double().requires_grad_(True) for t in (x, mask, pattern)]
    want = reference.nc_stamp(*want_leaves)
    (want * weights).sum().backward()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert out.shape == want.shape and out.dtype == dtype
    assert (out.double() - want).abs().max().item() <= tol
    for got, ref, name in zip(leaves, want_leaves, ("x", "mask", "pattern"), strict=True):
        scale = 1 + ref.grad.abs().max().item()
        assert (got.grad.double() - ref.grad).abs().max().item() <= tol * scale * 10, name


def test_reference_backward_is_the_gradient_of_the_forward():
    (x, mask, pattern), _ = make(3, 2, 5, 4, 3, torch.float64, "cpu", seed=5)
    leaves = [t.requires_grad_(True) for t in (x, mask, pattern)]
    assert torch.autograd.gradcheck(lambda *a: reference.nc_stamp(*a), leaves)
    grad = torch.randn(9, 2, 5, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    auto = torch.autograd.grad(reference.nc_stamp(*leaves), leaves, grad)
    for got, want in zip(reference.nc_stamp_backward(grad, x, mask, pattern), auto, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_hand_computed_example():
    x = torch.tensor([[[[0.2, 0.4]]], [[[1.0, 0.0]]]])  # B=2, C=1, 1×2
    mask = torch.tensor([[[0.0, 1.0]], [[0.5, 0.25]]])  # K=2
    pattern = torch.tensor([[[[0.9, 0.8]]], [[[0.0, 1.0]]]])
    out = nc_stamp(x, mask, pattern).flatten(1)
    want = torch.tensor([[0.2, 0.8], [1.0, 0.8], [0.1, 0.55], [0.5, 0.25]])
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize("args,match", [
    ((torch.rand(2, 3, 4), torch.rand(1, 3, 4), torch.rand(1, 2, 3, 4)), "x must be"),
    ((torch.rand(2, 3, 4, 4), torch.rand(1, 4, 5), torch.rand(1, 3, 4, 4)), "mask must be"),
    ((torch.rand(2, 3, 4, 4), torch.rand(2, 4, 4), torch.rand(1, 3, 4, 4)), "pattern must be"),
    ((torch.rand(2, 3, 4, 4), torch.rand(1, 4, 4).double(), torch.rand(1, 3, 4, 4)), "dtype"),
    ((torch.rand(2, 3, 4, 4).half(), torch.rand(1, 4, 4).half(), torch.rand(1, 3, 4, 4).half()), "dtype"),
    ((torch.arange(4).view(1, 1, 2, 2), torch.rand(1, 2, 2), torch.rand(1, 1, 2, 2)), "x must be a floating"),
])
def test_bad_arguments_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        nc_stamp(*args)


def test_no_host_read_forward_or_backward(monkeypatch):
    from tests.ops.test_host_reads import counting_host_reads

    (x, mask, pattern), weights = make(2, 3, 5, 5, 4, torch.float32, "cpu", seed=9)
    mask.requires_grad_(True)
    nc_stamp(x, mask, pattern)  # warm-up: first calls may import lazily
    with counting_host_reads(monkeypatch) as calls:
        out = nc_stamp(x, mask, pattern)
        (out * weights.float()).sum().backward()
    assert calls == []
