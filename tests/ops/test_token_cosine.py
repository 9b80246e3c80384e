"""token_cosine: the reference against the spec's definition (F.cosine_similarity + autograd), every backend
against the reference forward and backward on fresh seeded inputs, fp64 gradcheck, the profile, bad arguments."""
import pytest
import torch
import torch.nn.functional as F

import robustfast
from robustfast.ops import token_cosine, token_cosine_profile
from robustfast.reference import token_cosine as reference
from tests.conftest import DEVICE_BACKENDS

BACKENDS = [p for p in DEVICE_BACKENDS if p.values[1] in ("cpp", "triton")]


def pair(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(shape, generator=g, dtype=torch.float64)
    b = 0.3 * a + torch.randn(shape, generator=g, dtype=torch.float64)
    return a.to(device, dtype), b.to(device, dtype)


def spec_j(a, b, mask, reduction):
    """J from the spec with torch's own cosine (η = 1e−8, its eps), autograd for the gradient."""
    if reduction == "flat":
        keep = mask[None, :, None].to(a.dtype)
        return F.cosine_similarity((a * keep).flatten(1), (b * keep).flatten(1), dim=1, eps=1e-8)
    return F.cosine_similarity(a, b, dim=-1, eps=1e-8)[:, mask].mean(1)


@pytest.mark.parametrize("reduction", ["token", "flat"])
def test_reference_matches_the_definition_forward_and_backward(reduction):
    a, b = pair((4, 9, 21), torch.float64, "cpu", 3)
    mask = torch.tensor([True, False, True, True, True, False, True, True, True])
    a1 = a.clone().requires_grad_(True)
    want = spec_j(a1, b, mask, reduction)
    (want * torch.arange(1.0, 5.0, dtype=torch.float64)).sum().backward()
    got = reference.token_cosine(a, b, mask, reduction)
    grad = reference.token_cosine_backward(torch.arange(1.0, 5.0, dtype=torch.float64), a, b, mask, reduction)
    torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, a1.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device,backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape,reduction", [((6, 17, 64), "token"), ((3, 5, 300), "flat"), ((2, 31, 7), "token")])
def test_backend_forward_and_backward_match_the_reference(device, backend, dtype, shape, reduction):
    a, b = pair(shape, dtype, device, seed=shape[1])
    mask = torch.rand(shape[1], generator=torch.Generator().manual_seed(5)) > 0.2
    a.requires_grad_(True)
    weights = torch.rand(shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(6)) + 0.5
    with robustfast.use_backend(backend):
        j = token_cosine(a, b, reduction=reduction, token_mask=mask.to(device))
        (j.double() * weights.to(device)).sum().backward()
    a64, b64 = a.detach().double(), b.double()
    want = reference.token_cosine(a64, b64, mask.to(device), reduction)
    want_grad = reference.token_cosine_backward(weights.to(device), a64, b64, mask.to(device), reduction)
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    assert j.dtype == dtype and a.grad.dtype == dtype
    torch.testing.assert_close(j.double(), want, rtol=rtol, atol=rtol)
    torch.testing.assert_close(a.grad.double(), want_grad, rtol=rtol, atol=rtol * want_grad.abs().max().item())


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("reduction", ["token", "flat"])
def test_gradcheck_float64(device, backend, reduction):
    a, b = pair((2, 3, 4), torch.float64, device, seed=9)
    mask = torch.tensor([True, False, True], device=device)
    with robustfast.use_backend(backend):
        assert torch.autograd.gradcheck(lambda t: token_cosine(t, b, reduction=reduction, token_mask=mask),
                                        (a.requires_grad_(True),))


@pytest.mark.parametrize("device,backend", BACKENDS)
def test_profile_is_each_layer_in_one_call(device, backend):
    a, b = pair((3, 4, 7, 16), torch.float32, device, seed=12)
    with robustfast.use_backend(backend):
        prof = token_cosine_profile(a, b)
        want = torch.stack([token_cosine(a[i], b[i]) for i in range(3)], dim=1)
    assert prof.shape == (4, 3) and not prof.requires_grad
    torch.testing.assert_close(prof, want)


def test_identical_maps_give_one_and_an_empty_mask_gives_zero():
    a, _ = pair((2, 3, 5), torch.float32, "cpu", 1)
    torch.testing.assert_close(token_cosine(a, a.clone()), torch.ones(2))
    assert token_cosine(a, a, token_mask=torch.zeros(3, dtype=torch.bool)).abs().max() == 0


@pytest.mark.parametrize("kwargs,match", [
    ({"reduction": "mean"}, "reduction"),
    ({"token_mask": torch.ones(4, dtype=torch.bool)}, "token_mask"),
    ({"token_mask": torch.ones(3)}, "token_mask"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    a, b = pair((2, 3, 5), torch.float32, "cpu", 1)
    with pytest.raises(ValueError, match=match):
        token_cosine(a, b, **kwargs)


def test_shape_and_dtype_mismatch_name_b():
    a, b = pair((2, 3, 5), torch.float32, "cpu", 1)
    with pytest.raises(ValueError, match="b must have"):
        token_cosine(a, b[:, :2])
    with pytest.raises(ValueError, match="b must match"):
        token_cosine(a, b.double())
    with pytest.raises(ValueError, match="a must be"):
        token_cosine(a[0], b[0])
