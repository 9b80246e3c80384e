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
