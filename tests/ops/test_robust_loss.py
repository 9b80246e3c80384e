"""robust_loss: every backend against the float64 reference, forward and backward, on fresh random logits."""
import pytest
import torch

import robustfast
from robustfast.ops import robust_loss
from robustfast.reference import robust_loss as reference
from tests.conftest import DEVICE_BACKENDS

KINDS = reference.LOSSES
HYPER = {"alpha": 0.7, "beta": 1.3, "gamma": 0.5, "q": 0.4}


def make_logits(b, k, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
    logits[0] = 50 * torch.sign(torch.randn(k, generator=g, dtype=torch.float64))  # an extreme row
    labels = torch.randint(0, k, (b,), generator=g)
    return logits.to(device=device, dtype=dtype), labels.to(device)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("k", [2, 100, 1023])
@pytest.mark.parametrize("kind", KINDS)
def test_forward_and_backward_match_the_reference(device, backend, dtype, k, kind):
    logits, labels = make_logits(9, k, dtype, device, seed=k)
    logits.requires_grad_(True)
    weights = torch.rand(9, dtype=torch.float64, device=device) + 0.5
    with robustfast.use_backend(backend):
        loss = robust_loss(logits, labels, kind, **HYPER)
        (loss.double() * weights).sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
    x64 = logits.detach().double()
    expected = reference.robust_loss(x64, labels, kind, **HYPER)
    expected_grad = reference.robust_loss_grad(x64, labels, kind, **HYPER, grad_out=weights)
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    scale = 1 + expected.abs().max().item()
    assert (loss.double() - expected).abs().max().item() <= tol * scale
    grad_scale = 1 + expected_grad.abs().max().item()
    assert (logits.grad.double() - expected_grad).abs().max().item() <= tol * grad_scale


@pytest.mark.parametrize("device,backend", [p for p in DEVICE_BACKENDS if p.values[1] == "cpp"])
def test_opcheck_extension_ops(device, backend):
    logits, labels = make_logits(6, 10, torch.float32, device, seed=0)
    args = ("nce+rce", 1.0, 1.0, 0.5, 0.7)
    grad = torch.rand(6, device=device)
    for detach in (True, False):
        torch.library.opcheck(torch.ops.robustfast._robust_loss_cpp.default, (logits, labels, *args, detach))
        torch.library.opcheck(torch.ops.robustfast._robust_loss_backward_cpp.default,
                              (grad, logits, labels, *args, detach))


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("kind", ["fl", "nfl", "nfl+rce", "nfl+mae"])
def test_differentiated_focal_factor_matches_the_reference(device, backend, kind):
    logits, labels = make_logits(9, 37, torch.float32, device, seed=3)
    logits.requires_grad_(True)
    weights = torch.rand(9, dtype=torch.float64, device=device) + 0.5
    hyper = {**HYPER, "detach_focal_factor": False}
    with robustfast.use_backend(backend):
        (robust_loss(logits, labels, kind, **hyper).double() * weights).sum().backward()
    x64 = logits.detach().double()
    expected = reference.robust_loss_grad(x64, labels, kind, **hyper, grad_out=weights)
    detached = reference.robust_loss_grad(x64, labels, kind, **HYPER, grad_out=weights)
    tol = 2e-5 * (1 + expected.abs().max().item())
    assert (expected - detached).abs().max().item() > 4 * tol  # the switch changes the gradient beyond the tolerance
    assert (logits.grad.double() - expected).abs().max().item() <= tol


@pytest.mark.parametrize("logits,labels,match", [
    (torch.randn(4, 1), torch.zeros(4, dtype=torch.long), "K >= 2"),
    (torch.randn(4, 3, 2), torch.zeros(4, dtype=torch.long), "rank 2"),
    (torch.randn(4, 3), torch.full((4,), 3), r"\[0, 3\)"),
    (torch.randn(4, 3), torch.zeros(4), "integer"),
    (torch.randn(4, 3), torch.zeros(5, dtype=torch.long), "shape"),
    (torch.tensor([[0.0, float("nan")]]), torch.zeros(1, dtype=torch.long), "NaN"),
])
def test_bad_inputs(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        robust_loss(logits, labels, "nce+rce")


def published_nfl(logits, labels, gamma, detach):
    """NFL written out as the published code (HanxunH/Active-Passive-Losses, NormalizedFocalLoss) computes it: the
    normaliser Σ_k −(1−p_k)^γ log p_k with the factors (1−p_k)^γ detached but log p_k not, and the numerator's
    (1−p_y)^γ detached. detach=False differentiates every factor too."""
    logp = torch.log_softmax(logits, dim=1)
    factors = (1 - logp.exp()) ** gamma
    if detach:
        factors = factors.detach()
    normaliser = (-factors * logp).sum(dim=1)
    logp_y = logp.gather(1, labels.unsqueeze(1)).squeeze(1)
    focal_y = (1 - logp_y.exp()) ** gamma
    if detach:
        focal_y = focal_y.detach()
    return -focal_y * logp_y / normaliser


def published_passive(logits, labels, name):
    p = torch.softmax(logits, dim=1)
    onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).to(p.dtype)
    if name == "mae":
        return 1 - (p * onehot).sum(dim=1)
    p = p.clamp(min=1e-7, max=1.0)
    return -(p * torch.log(onehot.clamp(min=1e-4, max=1.0))).sum(dim=1)


@pytest.mark.parametrize("k", [10, 37])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("kind", ["nfl", "nfl+rce", "nfl+mae"])
def test_nfl_gradient_is_autograd_of_the_published_formula(k, detach, kind):
    g = torch.Generator().manual_seed(100 + k)
    logits = 3 * torch.randn(16, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (16,), generator=g)
    alpha, beta, gamma = 10.0, 1.0, 0.5
    x = logits.clone().requires_grad_(True)
    published = alpha * published_nfl(x, labels, gamma, detach)
    if kind != "nfl":
        published = published + beta * published_passive(x, labels, kind.split("+")[1])
    expected = torch.autograd.grad(published.sum(), x)[0]
    hyper = {"alpha": alpha, "beta": beta, "gamma": gamma, "detach_focal_factor": detach}
    x = logits.clone().requires_grad_(True)
    value = reference.robust_loss(x, labels, kind, **hyper)
    assert torch.allclose(value, published.detach(), rtol=1e-12, atol=1e-12)
    autograd_of_reference = torch.autograd.grad(value.sum(), x)[0]
    closed_form = reference.robust_loss_grad(logits, labels, kind, **hyper)
    scale = expected.abs().max().item()
    assert (autograd_of_reference - expected).abs().max().item() <= 1e-12 * scale
    assert (closed_form - expected).abs().max().item() <= 1e-12 * scale
    if not detach:  # finite differences see no detach: gradcheck applies to the undetached form only
        torch.autograd.gradcheck(lambda z: reference.robust_loss(z, labels[:4], kind, **hyper),
                                 (logits[:4].clone().requires_grad_(True),))
    if kind == "nfl":
        with robustfast.use_backend("reference"):
            x = logits.clone().requires_grad_(True)
            robust_loss(x, labels, kind, **hyper).sum().backward()
        assert (x.grad - expected).abs().max().item() <= 1e-12 * scale


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("kind", ["nfl", "nfl+rce", "nfl+mae"])
def test_nfl_backends_match_the_published_gradient(device, backend, detach, kind):
    g = torch.Generator().manual_seed(7)
    logits = 3 * torch.randn(12, 10, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 10, (12,), generator=g)
    x = logits.clone().requires_grad_(True)
    published = 10.0 * published_nfl(x, labels, 0.5, detach)
    if kind != "nfl":
        published = published + published_passive(x, labels, kind.split("+")[1])
    expected = torch.autograd.grad(published.sum(), x)[0]
    x = logits.to(device).requires_grad_(True)
    with robustfast.use_backend(backend):
        robust_loss(x, labels.to(device), kind, alpha=10.0, beta=1.0, gamma=0.5, detach_focal_factor=detach
                    ).sum().backward()
    assert (x.grad.cpu() - expected).abs().max().item() <= 1e-10 * expected.abs().max().item()


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("hyper,match", [
    ({"alpha": float("nan")}, "alpha"),
    ({"alpha": float("inf")}, "alpha"),
    ({"beta": float("inf")}, "beta"),
    ({"beta": float("nan")}, "beta"),
    ({"gamma": -0.5}, "gamma"),
    ({"gamma": float("nan")}, "gamma"),
    ({"q": 0.0}, "q"),
    ({"q": -1.0}, "q"),
    ({"q": float("inf")}, "q"),
])
@pytest.mark.parametrize("kind", ["gce", "nfl+rce"])
def test_bad_hyperparameters_are_rejected_on_every_backend(device, backend, hyper, match, kind):
    logits, labels = make_logits(4, 5, torch.float32, device, seed=0)
    with robustfast.use_backend(backend), pytest.raises(ValueError, match=match):
        robust_loss(logits, labels, kind, **hyper)
