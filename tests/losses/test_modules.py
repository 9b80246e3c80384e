import pytest
import torch

import robustfast.losses as L
from robustfast.losses import DEFAULTS, LOSSES, MODULES, robust_loss
from robustfast.reference import robust_loss as ref

NAMES = {"ce": "CE", "fl": "FocalLoss", "mae": "MAE", "rce": "RCE", "gce": "GCE", "sce": "SCE", "nce": "NCE",
         "nfl": "NFL", "ngce": "NGCE", "nmae": "NMAE", "nrce": "NRCE", "nce+rce": "NCEandRCE",
         "nce+mae": "NCEandMAE", "nfl+rce": "NFLandRCE", "nfl+mae": "NFLandMAE", "ngce+rce": "NGCEandRCE",
         "ngce+mae": "NGCEandMAE"}


def inputs(b, k, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(b, k, generator=g, dtype=torch.float64)
    z[0] = -50.0
    z[0, 0] = 50.0
    y = torch.randint(0, k, (b,), generator=g)
    return z.to(dtype), y


def custom(kind, seed):
    """Non-default values for every hyperparameter `kind` takes."""
    g = torch.Generator().manual_seed(seed)
    values = {"alpha": 0.5 + torch.rand(1, generator=g).item(), "beta": 2 * torch.rand(1, generator=g).item(),
              "gamma": torch.rand(1, generator=g).item(), "q": 0.05 + 0.9 * torch.rand(1, generator=g).item(),
              "detach_focal_factor": False}
    return {name: values[name] for name in DEFAULTS[kind]}


def test_every_loss_has_its_module():
    assert set(LOSSES) == set(NAMES) == set(MODULES) and len(LOSSES) == 17
    for kind, name in NAMES.items():
        assert getattr(L, name) is MODULES[kind] and MODULES[kind].kind == kind


def test_defaults_follow_the_spec():
    assert DEFAULTS["nce+rce"] == {"alpha": 1.0, "beta": 1.0}
    assert DEFAULTS["sce"] == {"alpha": 0.1, "beta": 1.0}
    assert DEFAULTS["fl"] == DEFAULTS["nfl"] == {"alpha": 1.0, "gamma": 0.5, "detach_focal_factor": True}
    assert DEFAULTS["gce"]["q"] == 0.7 and DEFAULTS["ngce+mae"]["q"] == 0.1
    assert DEFAULTS["mae"] == DEFAULTS["nrce"] == {"beta": 1.0}


@pytest.mark.parametrize("kind", LOSSES)
def test_module_equals_functional_and_reference(kind):
    z, y = inputs(33, 10, seed=len(kind))
    h = custom(kind, seed=3)
    module = MODULES[kind](10, reduction="none", **h)
    per_sample = module(z, y)
    assert per_sample.shape == (33,) and per_sample.dtype == torch.float32
    assert torch.equal(per_sample, robust_loss(z, y, kind, reduction="none", **h))
    # the module runs the auto backend (the C++ kernel here): equal to the reference up to rounding
    torch.testing.assert_close(per_sample, ref.robust_loss(z, y, kind, **h), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(MODULES[kind](10, **h)(z, y), per_sample.mean())
    torch.testing.assert_close(MODULES[kind](10, reduction="sum", **h)(z, y), per_sample.sum())
    assert torch.equal(MODULES[kind](num_classes=10)(z, y), robust_loss(z, y, kind))


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_module_gradient_equals_autograd_of_reference(kind, reduction):
    z, y = inputs(17, 23, seed=5, dtype=torch.float64)
    h = custom(kind, seed=len(kind))
    h.pop("detach_focal_factor", None)  # the detached default; the full factor is checked in test_reference
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    MODULES[kind](23, reduction=reduction, **h)(z1, y).backward()
    auto = ref.robust_loss(z2, y, kind, **h)
    (auto.mean() if reduction == "mean" else auto.sum()).backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("kind", ["nce+rce", "ngce+mae", "gce", "nrce"])
def test_gradcheck_through_the_module(kind):
    z, y = inputs(4, 6, seed=9, dtype=torch.float64)
    z[0] = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    module = MODULES[kind](6, reduction="sum", **custom(kind, seed=2))
    assert torch.autograd.gradcheck(lambda t: module(t, y), (z.requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits(dtype):
    z, y = inputs(16, 10, seed=4, dtype=dtype)
    z.requires_grad_()
    loss = L.NCEandRCE(10)(z, y)
    loss.backward()
    # the loss is float32 (as cross_entropy under autocast); the gradient comes back in the logits dtype
    assert loss.dtype == torch.float32 and z.grad.dtype == dtype and torch.isfinite(z.grad).all()
    expected = ref.robust_loss_grad(z.detach().float(), y, "nce+rce") / 16
    torch.testing.assert_close(z.grad.float(), expected, rtol=2e-2, atol=1e-3)


def test_labels_of_any_integer_dtype():
    z, y = inputs(8, 5, seed=6)
    expected = L.NCE(5)(z, y)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        assert torch.equal(L.NCE(5)(z, y.to(dtype)), expected)


@pytest.mark.parametrize("make,match", [
    (lambda z, y: (z, y.float()), "labels"),
    (lambda z, y: (z, y.bool()), "labels"),
    (lambda z, y: (z, y[:-1]), "labels"),
    (lambda z, y: (z, y[:, None]), "labels"),
    (lambda z, y: (z, y.tolist()), "labels"),
    (lambda z, y: (z, torch.where(y == y[0], 5, y)), "labels"),
    (lambda z, y: (z, torch.where(y == y[0], -1, y)), "labels"),
    (lambda z, y: (z[:, :1], torch.zeros_like(y)), "K >= 2"),
    (lambda z, y: (z[0], y), "logits"),
    (lambda z, y: (z.long(), y), "logits"),
    (lambda z, y: (z.tolist(), y), "logits"),
    (lambda z, y: (torch.where(z == z[2, 3], float("nan"), z), y), "logits"),
    (lambda z, y: (torch.where(z == z[1, 1], float("inf"), z), y), "logits"),
])
def test_bad_inputs(make, match):
    z, y = inputs(6, 5, seed=8)
    bad_z, bad_y = make(z, y)
    with pytest.raises(ValueError, match=match):
        robust_loss(bad_z, bad_y, "nce+rce")
    if isinstance(bad_z, torch.Tensor) and bad_z.dim() == 2 and bad_z.shape[1] == 5:
        with pytest.raises(ValueError, match=match):
            L.NCEandRCE(5)(bad_z, bad_y)


def test_num_classes_must_match_logits():
    z, y = inputs(6, 5, seed=10)
    with pytest.raises(ValueError, match="num_classes"):
        L.CE(10)(z, y)
    for bad in (1, 0, 2.5, True, "10"):
        with pytest.raises(ValueError, match="num_classes"):
            L.CE(bad)


@pytest.mark.parametrize("cls,kwargs,match", [
    (L.CE, {"gamma": 0.5}, "gamma"),
    (L.MAE, {"alpha": 2.0}, "alpha"),
    (L.NCEandRCE, {"q": 0.5}, "q"),
    (L.NCEandRCE, {"scale": 10.0}, "scale"),
    (L.NGCE, {"q": 0.0}, "q"),
    (L.GCE, {"q": 1.5}, "q"),
    (L.FocalLoss, {"gamma": -1.0}, "gamma"),
    (L.FocalLoss, {"detach_focal_factor": 1}, "detach_focal_factor"),
    (L.NCEandMAE, {"beta": float("nan")}, "beta"),
    (L.SCE, {"alpha": "1"}, "alpha"),
    (L.CE, {"reduction": "avg"}, "reduction"),
])
def test_bad_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(10, **kwargs)


def test_functional_argument_errors():
    z, y = inputs(6, 5, seed=12)
    with pytest.raises(ValueError, match="kind"):
        robust_loss(z, y, "nce+gce")
    with pytest.raises(ValueError, match="gamma"):
        robust_loss(z, y, "nce", gamma=0.5)
    with pytest.raises(ValueError, match="reduction"):
        robust_loss(z, y, "nce", reduction="batchmean")
    assert torch.equal(robust_loss(z, y, "NCE+RCE"), robust_loss(z, y, "nce+rce"))


def test_trains_a_linear_model():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(256, 8, generator=g)
    w_true = torch.randn(8, 4, generator=g)
    y = (x @ w_true).argmax(1)
    w = (0.1 * torch.randn(8, 4, generator=g)).requires_grad_()
    criterion = L.NCEandRCE(4, alpha=1.0, beta=1.0)
    for _ in range(60):
        (grad,) = torch.autograd.grad(criterion(x @ w, y), w)
        with torch.no_grad():
            w -= 0.5 * grad
    assert ((x @ w).argmax(1) == y).float().mean() > 0.9
