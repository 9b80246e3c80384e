"""Bad input to pgd_step, pgd_random_init, PGD and robust_accuracy (issue 13): parametrised and property-based.

Each case either runs to a finite result or is rejected with a ValueError/TypeError naming the argument. Value
checks that read tensors are the caller's (PGD, pgd_random_init, check_step_values), never pgd_step's."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

import robustfast
from robustfast.attacks import PGD, robust_accuracy
from robustfast.models import SmallCNN
from robustfast.ops import check_step_values, pgd_random_init, pgd_step
from tests.bad_input.helpers import finite, images, rejected
from tests.conftest import DEVICE_BACKENDS

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ODD_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -0.0]))
BAD_NUMBERS = [math.inf, -math.inf, math.nan, -0.1, True, "0.1", None]


def step_inputs(seed=0, shape=(4, 3, 5, 5)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g)
    x = (x0 + 0.02 * torch.randn(shape, generator=g)).clamp(0, 1)
    x[0] = x0[0]  # a sample still at its start: δ = 0
    grad = torch.randn(shape, generator=g)
    grad[1] = 0  # a sample whose gradient vanishes
    return x, grad, x0


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SmallCNN(in_channels=3, width=8).eval()


# --- pgd_step: numbers are checked by the op itself (no host read) ------------------------------------------------

@pytest.mark.parametrize("name", ["alpha", "eps"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_pgd_step_rejects_a_number_that_is_not_finite_and_non_negative(name, value):
    x, grad, x0 = step_inputs()
    kwargs = {"alpha": 0.01, "eps": 0.03, name: value}
    with rejected(name):
        pgd_step(x, grad, x0, **kwargs)


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_step_with_zero_alpha_and_eps_is_x0_on_every_backend(device, backend, norm):
    """α = ε = 0 leaves nothing to step: every backend returns x₀ (the L2 reference gave 0/0 = NaN where δ = 0)."""
    x, grad, x0 = (t.to(device) for t in step_inputs())
    with robustfast.use_backend(backend):
        out = pgd_step(x, grad, x0, alpha=0.0, eps=0.0, norm=norm)
    assert finite(out)
    torch.testing.assert_close(out, x0, rtol=0, atol=0)


@FAST
@given(alpha=ODD_FLOATS, eps=ODD_FLOATS, norm=st.sampled_from(["Linf", "L2"]))
def test_pgd_step_is_finite_or_names_alpha_or_eps(alpha, eps, norm):
    x, grad, x0 = step_inputs(seed=1)
    outs = []
    for backend in ("reference", *[b for b in robustfast._backend.available(x.device) if b == "cpp"]):
        try:
            with robustfast.use_backend(backend):
                outs.append(pgd_step(x, grad, x0, alpha=alpha, eps=eps, norm=norm))
        except ValueError as err:
            assert "alpha" in str(err) or "eps" in str(err)
            return
    for out in outs:
        assert finite(out) and out.min() >= 0 and out.max() <= 1
    if len(outs) == 2:  # the backends agree on every accepted input
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)


# --- what pgd_step leaves to its caller: check_step_values, once at entry ------------------------------------------

@pytest.mark.parametrize("name", ["x", "x0"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_step_values_names_non_finite_x_and_x0(name, value):
    x, _, x0 = step_inputs()
    tensors = {"x": x.clone(), "x0": x0.clone()}
    tensors[name][2, 1, 3, 4] = value
    with rejected(name):
        check_step_values(tensors["x0"], x=tensors["x"])


@pytest.mark.parametrize("name", ["alpha", "eps"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1e-3])
def test_check_step_values_names_bad_per_sample_tensors(name, value):
    _, _, x0 = step_inputs()
    per_sample = {"alpha": torch.full((4,), 0.01), "eps": torch.full((4,), 0.03)}
    per_sample[name][3] = value
    with rejected(name):
        check_step_values(x0, **per_sample)


def test_check_step_values_accepts_good_inputs():
    x, _, x0 = step_inputs()
    check_step_values(x0, x=x, alpha=torch.full((4,), 0.01), eps=0.03)


# --- pgd_random_init: runs once per attack, so it checks values itself ----------------------------------------------

@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_pgd_random_init_rejects_non_finite_x0(norm, value):
    x0 = images()
    x0[1, 0, 2, 2] = value
    with rejected("x0"):
        pgd_random_init(x0, eps=0.03, norm=norm)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -0.5])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_pgd_random_init_rejects_a_bad_eps(norm, value, as_tensor):
    x0 = images()
    eps = torch.tensor([0.03, value, 0.03, 0.03]) if as_tensor else value
    with rejected("eps"):
        pgd_random_init(x0, eps=eps, norm=norm)


@FAST
@given(eps=st.lists(ODD_FLOATS, min_size=4, max_size=4), norm=st.sampled_from(["Linf", "L2"]))
def test_pgd_random_init_is_finite_or_names_eps(eps, norm):
    try:
        out = pgd_random_init(images(), eps=torch.tensor(eps), norm=norm,
                              generator=torch.Generator().manual_seed(0))
    except ValueError as err:
        assert "eps" in str(err)
        return
    assert finite(out)


def test_pgd_random_init_of_an_empty_batch_is_empty():
    assert pgd_random_init(torch.rand(0, 3, 4, 4), eps=0.1, norm="L2").shape == (0, 3, 4, 4)


# --- PGD: numbers at construction, images and labels once per call --------------------------------------------------

@pytest.mark.parametrize("name", ["eps", "alpha"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_pgd_rejects_eps_and_alpha_that_are_not_finite_non_negative_numbers(model, name, value):
    with rejected(name):
        PGD(model, **{name: value})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_pgd_rejects_non_finite_images(model, value):
    x = images()
    x[0, 0, 0, 0] = value
    with rejected("images"):
        PGD(model, steps=1)(x, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("bad", [-1, 10, 200])
def test_pgd_names_labels_outside_the_model_classes(model, bad):
    labels = torch.tensor([0, 1, bad, 3])
    with rejected("labels"):
        PGD(model, steps=1)(images(), labels)


@pytest.mark.parametrize("kind", ["float64", "channels"])
def test_pgd_names_images_that_do_not_fit_the_model(model, kind):
    x = images().double() if kind == "float64" else images(c=1)
    with rejected("images"):
        PGD(model, steps=1)(x, torch.zeros(4, dtype=torch.long))


def test_pgd_label_check_keeps_the_model_state(model):
    model.train()
    try:
        adv = PGD(model, steps=2, eps=0.05, alpha=0.02)(images(), torch.tensor([0, 1, 2, 3]))
        assert model.training and finite(adv)
    finally:
        model.eval()


# --- robust_accuracy ------------------------------------------------------------------------------------------------

def batches(x, y, batch_size=4):
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


@pytest.mark.parametrize("loader", [None, 3, "data"])
def test_robust_accuracy_names_a_loader_that_is_not_one(model, loader):
    with rejected("loader", kind=TypeError):
        robust_accuracy(model, loader, PGD(model, steps=1), progress=False)


def test_robust_accuracy_names_a_model_that_is_not_one(model):
    with rejected("model", kind=TypeError):
        robust_accuracy(None, batches(images(), torch.zeros(4, dtype=torch.long)), PGD(model, steps=1),
                        progress=False)


@pytest.mark.parametrize("bad", [-1, 10, 200])
def test_robust_accuracy_names_labels_outside_the_model_classes(model, bad):
    y = torch.tensor([0, 1, 2, bad])
    with rejected("labels"):
        robust_accuracy(model, batches(images(), y), PGD(model, steps=1), progress=False)


@pytest.mark.parametrize("kind", ["float64", "channels", "rank", "uint8", "dataset"])
def test_robust_accuracy_names_images_that_do_not_fit_the_model(model, kind):
    y = torch.zeros(4, dtype=torch.long)
    x = {"float64": images().double(), "channels": images(c=1), "rank": images()[:, 0],
         "uint8": (images() * 255).to(torch.uint8), "dataset": images()}[kind]
    loader = TensorDataset(x, y) if kind == "dataset" else batches(x, y)
    with rejected("loader"):
        robust_accuracy(model, loader, PGD(model, steps=1), progress=False)


def test_robust_accuracy_still_counts_good_batches(model):
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    result = robust_accuracy(model, batches(images(n=6), y, batch_size=4), PGD(model, steps=1), progress=False)
    assert result["n"] == 6 and 0 <= result["robust"] <= result["clean"] <= 1
