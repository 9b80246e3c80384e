import math

import pytest
import torch

from robustfast.reference import robust_loss as ref

A = -math.log(1e-4)
KS = [2, 10, 100, 1000, 1023]
FOCAL = [k for k in ref.LOSSES if ref.COMPONENTS[k][0] in ("fl", "nfl")]
# Kinds whose autograd is the true derivative (nothing detached), so finite differences apply.
UNDETACHED = [k for k in ref.LOSSES if k not in FOCAL]


def make_logits(b, k, seed, dtype=torch.float64, extreme=True):
    """Random logits of several scales, plus rows at ±50 (saturated softmax, clamps active, ties) when extreme."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([0.3, 1.0, 3.0, 8.0], dtype=torch.float64).repeat(b)[:b, None]
    z = scale * torch.randn(b, k, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (b,), generator=g)
    if extreme:
        rows = torch.full((4, k), -50.0, dtype=torch.float64)
        rows[0, 0] = 50.0                                   # label certain
        rows[1] = 50.0
        rows[1, 1] = -50.0                                  # label impossible
        rows[2] = torch.where(torch.rand(k, generator=g) < 0.5, 50.0, -50.0).double()
        rows[2, 0] = -50.0
        rows[3] = 50.0 * torch.sign(torch.randn(k, generator=g, dtype=torch.float64))
        z = torch.cat([z, rows])
        y = torch.cat([y, torch.tensor([0, 1, 0, int(torch.randint(0, k, (1,), generator=g))])])
    return z.to(dtype), y


def random_hyper(seed, detach=True):
    g = torch.Generator().manual_seed(seed)
    alpha, beta, gamma, q = (0.2 + 3 * torch.rand(4, generator=g, dtype=torch.float64)).tolist()
    return {"alpha": alpha, "beta": beta, "gamma": gamma / 2, "q": min(q / 3.2, 1.0), "detach_focal_factor": detach}


def autograd_of_reference(z, y, kind, h):
    z = z.clone().requires_grad_()
    loss = ref.robust_loss(z, y, kind, **h)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach(), grad


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("kind", ref.LOSSES)
def test_closed_form_gradient_equals_autograd_float64(kind, k):
    z, y = make_logits(12, k, seed=k)
    for detach in (True, False) if kind in FOCAL else (True,):
        h = random_hyper(k + len(kind), detach)
        loss, auto = autograd_of_reference(z, y, kind, h)
        closed = ref.robust_loss_grad(z, y, kind, **h)
        assert torch.isfinite(loss).all() and torch.isfinite(closed).all()
        assert loss.shape == (z.shape[0],) and closed.shape == z.shape
        # Differentiating (1−p_y)^γ by autograd gives 0·inf where p_y rounds to 1; the closed form takes the
        # limit, where the focal part's gradient vanishes whether or not its factor is detached.
        rows = torch.isfinite(auto).all(dim=1)
        assert rows.all() or (not detach and rows.sum() >= z.shape[0] - 4)
        torch.testing.assert_close(closed[rows], auto[rows], rtol=1e-9, atol=1e-13)
        limit = ref.robust_loss_grad(z, y, kind, **{**h, "detach_focal_factor": True})
        assert torch.equal(closed[~rows], limit[~rows])


@pytest.mark.parametrize("k", [2, 10, 1023])
@pytest.mark.parametrize("kind", ref.LOSSES)
def test_float32_is_finite_and_close_to_float64(kind, k):
    z, y = make_logits(12, k, seed=100 + k)
    h = random_hyper(k)
    loss64, grad64 = ref.robust_loss(z, y, kind, **h), ref.robust_loss_grad(z, y, kind, **h)
    loss32, grad32 = ref.robust_loss(z.float(), y, kind, **h), ref.robust_loss_grad(z.float(), y, kind, **h)
    assert loss32.dtype == grad32.dtype == torch.float32
    assert torch.isfinite(loss32).all() and torch.isfinite(grad32).all()
    torch.testing.assert_close(loss32.double(), loss64, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad32.double(), grad64, rtol=1e-4, atol=1e-6 * grad64.abs().max().item())


@pytest.mark.parametrize("kind", [*UNDETACHED, "fl"])
def test_gradcheck_reference(kind):
    z, y = make_logits(4, 5, seed=7, extreme=False)
    z[0, 1] = z[0, 0] - 20  # p < 1e−7: the clamps of RCE, GCE and NGCE are active there
    h = random_hyper(3, detach=False)
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ref.robust_loss(t, y, kind, **h), (z,))


@pytest.mark.parametrize("kind", FOCAL)
def test_detached_focal_parts_are_constants_in_the_gradient(kind):
    """The closed form is the exact derivative of the loss with the detached parts frozen at the point."""
    z0, y = make_logits(6, 7, seed=11, extreme=False)
    h = random_hyper(5)
    gamma, (active, passive) = h["gamma"], ref.COMPONENTS[kind]
    p0 = torch.softmax(z0, 1)
    w0 = (1 - p0.gather(1, y[:, None]).squeeze(1)) ** gamma
    factors0 = (1 - p0) ** gamma  # NFL's denominator: its factors frozen, its log p_k live (the published code)

    def frozen(z):
        logp = torch.log_softmax(z, 1)
        logp_y = logp.gather(1, y[:, None]).squeeze(1)
        out = h["alpha"] * -w0 * logp_y / (-(factors0 * logp).sum(1) if active == "nfl" else 1.0)
        return out if passive is None else out + h["beta"] * ref.robust_loss(z, y, passive)

    z = z0.clone().requires_grad_()
    assert torch.autograd.gradcheck(frozen, (z,))
    (expected,) = torch.autograd.grad(frozen(z).sum(), z)
    torch.testing.assert_close(ref.robust_loss(z0, y, kind, **h), frozen(z0), rtol=1e-12, atol=0)
    torch.testing.assert_close(ref.robust_loss_grad(z0, y, kind, **h), expected, rtol=1e-10, atol=1e-14)


def test_hand_values():
    z = torch.tensor([[2.0, 1.0, -0.5], [0.0, 30.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    p = [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in z.tolist()]
    k, gamma, q = 3, 0.5, 0.7

    def expected(kind, i):
        py, logp = p[i][0], [math.log(v) for v in p[i]]
        clamped = [max(v, 1e-7) for v in p[i]]
        fl = -((1 - py) ** gamma) * logp[0]
        rce = A * sum(clamped[1:])
        return {
            "ce": -logp[0],
            "fl": fl,
            "mae": 1 - py,
            "rce": rce,
            "gce": (1 - clamped[0] ** q) / q,
            "nce": logp[0] / sum(logp),
            "nfl": fl / -sum((1 - v) ** gamma * lv for v, lv in zip(p[i], logp, strict=True)),
            "ngce": (1 - clamped[0] ** q) / (k - sum(v**q for v in clamped)),
            "nmae": (1 - py) / (2 * (k - 1)),
            "nrce": rce / (A * (k - 1)),
        }[kind]

    for kind in ref.ACTIVE + ref.PASSIVE:
        got = ref.robust_loss(z, y, kind, gamma=gamma, q=q).tolist()
        assert got == pytest.approx([expected(kind, 0), expected(kind, 1)], rel=1e-12, abs=1e-300), kind
    # Row 1 has p_0 ≈ 1e−13 < 1e−7: RCE counts it as 1e−7 and its clamp is active.
    assert p[1][0] < 1e-7
    sce = ref.robust_loss(z, y, "sce", alpha=0.1, beta=1.0).tolist()
    assert sce == pytest.approx([0.1 * expected("ce", i) + expected("rce", i) for i in (0, 1)], rel=1e-12)
    assert abs(A - 9.2103) < 1e-4


def test_hand_gradients_match_spec_table():
    """Spec §6 closed forms, written out for rows without active clamps."""
    g = torch.Generator().manual_seed(21)
    k, q, gamma = 6, 0.7, 0.5
    z, y = torch.randn(5, k, generator=g, dtype=torch.float64), torch.randint(0, k, (5,), generator=g)
    p, logp = torch.softmax(z, 1), torch.log_softmax(z, 1)
    e = torch.nn.functional.one_hot(y, k).double()
    py, ly, s = (p * e).sum(1, keepdim=True), (logp * e).sum(1, keepdim=True), logp.sum(1, keepdim=True)
    t = (p**q).sum(1, keepdim=True)
    w = (1 - py) ** gamma
    wk = (1 - p) ** gamma
    dfl = -(wk * logp).sum(1, keepdim=True)
    table = {
        "ce": p - e,
        "fl": w * (p - e),
        "mae": py * (p - e),
        "rce": A * py * (p - e),
        "nce": ((e - p) * s - ly * (1 - k * p)) / s**2,
        # N/D with N = −w ℓ_y, D = −Σ_k w_k ℓ_k, the factors w_k = (1−p_k)^γ detached: ∇N/D − (N/D²)∇D
        "nfl": w / dfl * (p - e) - (-w * ly / dfl**2) * (-wk + p * wk.sum(1, keepdim=True)),
        "gce": py**q * (p - e),
        "ngce": (q * py**q * (p - e) * (k - t) + q * (1 - py**q) * (p**q - p * t)) / (k - t) ** 2,
        "nmae": py * (p - e) / (2 * (k - 1)),
        "sce": (0.3 + 2.0 * A * py) * (p - e),
    }
    assert (p > 1e-7).all()
    for kind, expected in table.items():
        got = ref.robust_loss_grad(z, y, kind, alpha=0.3 if kind == "sce" else 1.0, beta=2.0 if kind == "sce" else 1.0,
                                   gamma=gamma, q=q)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-14, msg=kind)
    full_fl = (e - p) * (gamma * py * ly * (1 - py) ** (gamma - 1) - w)
    torch.testing.assert_close(ref.robust_loss_grad(z, y, "fl", gamma=gamma, detach_focal_factor=False), full_fl)


@pytest.mark.parametrize("kind", [k for k in ref.LOSSES if None not in ref.COMPONENTS[k]])
def test_pairs_add_linearly(kind):
    z, y = make_logits(8, 9, seed=31)
    active, passive = ref.COMPONENTS[kind]
    h = random_hyper(8)
    loss = ref.robust_loss(z, y, kind, **h)
    grad = ref.robust_loss_grad(z, y, kind, **h)
    one = {**h, "alpha": 1.0, "beta": 1.0}
    parts = [(h["alpha"], active), (h["beta"], passive)]
    torch.testing.assert_close(loss, sum(c * ref.robust_loss(z, y, n, **one) for c, n in parts), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, sum(c * ref.robust_loss_grad(z, y, n, **one) for c, n in parts), rtol=1e-12,
                               atol=1e-15)


def test_normalized_losses_lie_in_their_ranges():
    z, y = make_logits(64, 10, seed=41)
    for kind, top in (("nce", 1.0), ("nfl", 1.0), ("nmae", 1 / 18), ("nrce", 1.0 + 1e-6), ("ngce", 1.0)):
        loss = ref.robust_loss(z, y, kind)
        assert ((loss >= 0) & (loss <= top)).all(), kind
