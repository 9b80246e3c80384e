"""adv_loss: the reference against autograd of the published TRADES/MART batch losses, and every backend against
the float64 reference, forward and both gradients, on fresh seeded logits."""
import pytest
import torch
import torch.nn.functional as F

import robustfast
from robustfast.ops import adv_loss
from robustfast.reference import adv_loss as reference
from tests.conftest import DEVICE_BACKENDS


def make_logits(b, k, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    a = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
    adv = a + 2 * torch.randn(b, k, generator=g, dtype=torch.float64)
    # a saturated softmax, without ties (the published MART breaks ties of ŷ by argsort order)
    adv[0] = 40 * torch.sign(torch.randn(k, generator=g, dtype=torch.float64)) + torch.rand(k, generator=g)
    labels = torch.randint(0, k, (b,), generator=g)
    return a.to(device, dtype), adv.to(device, dtype), labels.to(device)


def published(kind, nat, adv, y, beta):
    """The batch losses as the TRADES and MART repositories write them (KLDivLoss on softmax/log-softmax)."""
    b = nat.shape[0]
    if kind == "kl":
        return F.kl_div(F.log_softmax(adv, 1), F.softmax(nat, 1), reduction="sum") / b
    if kind == "trades":
        return F.cross_entropy(nat, y) + beta * F.kl_div(F.log_softmax(adv, 1), F.softmax(nat, 1),
                                                         reduction="sum") / b
    adv_probs = F.softmax(adv, 1)
    top2 = torch.argsort(adv_probs, 1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    loss_adv = F.cross_entropy(adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(nat, 1)
    true_probs = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    return loss_adv + beta * (kl * (1.0000001 - true_probs)).sum() / b


@pytest.mark.parametrize("kind", reference.KINDS)
@pytest.mark.parametrize("k", [10, 37])
def test_reference_is_the_published_loss_and_its_closed_form_gradient_is_autograd(kind, k):
    nat, adv, y = make_logits(16, k, torch.float64, "cpu", seed=k)
    nat, adv = nat.requires_grad_(True), adv.requires_grad_(True)
    want = published(kind, nat, adv, y, 6.0)
    grad_nat, grad_adv = torch.autograd.grad(want, (nat, adv))
    got = reference.adv_loss(nat.detach(), adv.detach(), y, kind, 6.0).mean()
    da, db = reference.adv_loss_grad(torch.full((16,), 1 / 16, dtype=torch.float64), nat.detach(), adv.detach(), y,
                                     kind, 6.0)
    assert abs(got.item() - want.item()) <= 1e-12 * (1 + abs(want.item()))
    assert torch.allclose(da, grad_nat, rtol=1e-9, atol=1e-12)
    assert torch.allclose(db, grad_adv, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", reference.KINDS)
def test_forward_and_both_gradients_match_the_reference(device, backend, dtype, kind):
    nat, adv, y = make_logits(11, 37, dtype, device, seed=3 + len(kind))
    nat, adv = nat.requires_grad_(True), adv.requires_grad_(True)
    weights = torch.rand(11, dtype=torch.float64, device=device, generator=None) + 0.5
    with robustfast.use_backend(backend):
        loss = adv_loss(nat, adv, y, kind, beta=6.0)
        (loss.double() * weights).sum().backward()
    n64, a64 = nat.detach().double(), adv.detach().double()
    want = reference.adv_loss(n64, a64, y, kind, 6.0)
    da, db = reference.adv_loss_grad(weights, n64, a64, y, kind, 6.0)
    tol = 1e-10 if dtype == torch.float64 else 1e-6 * 4  # float32: a few ulps of the O(1) terms
    for got, expected in ((loss, want), (nat.grad, da), (adv.grad, db)):
        assert torch.isfinite(got).all()
        assert (got.double() - expected).abs().max().item() <= tol * (1 + expected.abs().max().item())


def test_gradcheck_float64():
    nat, adv, y = make_logits(5, 7, torch.float64, "cpu", seed=11)
    for kind in reference.KINDS:
        torch.autograd.gradcheck(lambda a, b, kind=kind: adv_loss(a, b, y, kind, beta=2.5),
                                 (nat.requires_grad_(True), adv.requires_grad_(True)))


@pytest.mark.parametrize("args,match", [
    ((torch.randn(4, 3), torch.randn(4, 4), torch.zeros(4, dtype=torch.long), "trades"), "adv_logits"),
    ((torch.randn(4, 1), torch.randn(4, 1), torch.zeros(4, dtype=torch.long), "trades"), "K >= 2"),
    ((torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4), "trades"), "labels"),
    ((torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, dtype=torch.long), "madry"), "kind"),
])
def test_bad_arguments_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        adv_loss(*args)
    with pytest.raises(ValueError, match="beta"):
        adv_loss(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, dtype=torch.long), "mart", beta=-1.0)
