"""Bad arguments to the public functions hardened for issue 13: parametrised and property-based.

Each case either runs to a finite result or is rejected with a ValueError/TypeError naming the argument."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from robustfast.backdoor import evaluate, make_trigger, poison
from robustfast.lid.ldreg import LDReg
from robustfast.llm.data import load_examples, poison as llm_poison
from robustfast.models import SmallCNN
from robustfast.unlearnable import make_unlearnable
from tests.bad_input.helpers import finite, images, rejected

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ODD_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -0.0]))


def features(seed=0):
    return torch.randn(16, 8, generator=torch.Generator().manual_seed(seed))


# --- LDReg -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [math.inf, -math.inf, math.nan, -0.5, True, "0.1", None])
def test_ldreg_rejects_a_beta_that_is_not_a_finite_number(beta):
    with rejected("beta"):
        LDReg(beta=beta, k=4)


@pytest.mark.parametrize("k", [1, 0, -3, 2.0, True, None])
def test_ldreg_rejects_k(k):
    with rejected("k"):
        LDReg(beta=0.1, k=k)


@FAST
@given(beta=ODD_FLOATS)
def test_ldreg_is_finite_or_names_beta(beta):
    try:
        reg = LDReg(beta=beta, k=4)
    except ValueError as err:
        assert "beta" in str(err)
        return
    assert finite(reg(features()))


# --- triggers ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["badnets", "fourcorner"])
@pytest.mark.parametrize("size", [0, -1, 2.5, True, None])
def test_checker_triggers_reject_a_size_that_stamps_nothing(name, size):
    with rejected("size"):
        make_trigger(name, size=size)


@pytest.mark.parametrize(("key", "value"), [("strength", math.nan), ("strength", math.inf), ("strength", -1.0),
                                            ("strength", "0.5"), ("grid_size", 0), ("grid_size", 1),
                                            ("grid_size", 2.0)])
def test_wanet_rejects_bad_parameters(key, value):
    with rejected(key):
        make_trigger("wanet", **{key: value})


@FAST
@given(strength=ODD_FLOATS)
def test_wanet_output_is_finite_or_names_strength(strength):
    try:
        trig = make_trigger("wanet", strength=strength)
    except ValueError as err:
        assert "strength" in str(err)
        return
    out = trig.apply(images())
    assert finite(out) and out.min() >= 0 and out.max() <= 1


def _corrupt(kind):
    x = images()
    if kind == "nan":
        x[0, 0, 0, 0] = math.nan
    elif kind == "inf":
        x[1, 2, 3, 4] = math.inf
    elif kind == "above":
        x[2, 1, 1, 1] = 1.5
    elif kind == "below":
        x[3, 0, 2, 2] = -0.25
    elif kind == "rank":
        x = x[0]
    elif kind == "int":
        x = (x * 255).long()
    return x


@pytest.mark.parametrize("trigger", ["wanet", "wanet_noise", "iad", "badnets"])
@pytest.mark.parametrize("kind", ["nan", "inf", "above", "below", "rank", "int"])
def test_stage_triggers_reject_images_as_pixel_triggers_do(trigger, kind):
    with rejected("images"):
        make_trigger(trigger).apply(_corrupt(kind))


def test_stage_triggers_still_poison_good_images():
    for name in ("wanet", "iad"):
        out = make_trigger(name).apply(images())
        assert finite(out) and out.shape == (4, 3, 8, 8)


# --- backdoor evaluate -------------------------------------------------------------------------------------------

def _backdoor_setup():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4, in_channels=3, width=4)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    return model, TensorDataset(images(6), labels)


@FAST
@given(batch_size=st.one_of(st.integers(-4, 8), st.sampled_from([2.0, True, None])))
def test_backdoor_evaluate_counts_every_image_or_names_batch_size(batch_size):
    model, data = _backdoor_setup()
    try:
        report = evaluate(model, data, ["badnets"], target=0, num_classes=4, batch_size=batch_size)
    except ValueError as err:
        assert "batch_size" in str(err)
        return
    assert int(report.counts[0].sum()) == 6 and int(report.counts[1].sum()) == 5


def test_backdoor_evaluate_rejects_none_for_the_dataset():
    model, _ = _backdoor_setup()
    with rejected("clean_test", kind=TypeError):
        evaluate(model, None, ["badnets"])


def test_poison_rejects_nan_images():
    x = images(6)
    x[0, 0, 0, 0] = math.nan
    with rejected("images"):
        poison(x, torch.tensor([0, 1, 2, 3, 1, 2]), "wanet", rate=0.5)


# --- make_unlearnable ----------------------------------------------------------------------------------------------

@FAST
@given(value=ODD_FLOATS, at=st.integers(0, 4 * 3 * 8 * 8 - 1))
def test_make_unlearnable_is_finite_or_names_noise(value, at):
    noise = (torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) - 0.5) * (16 / 255)
    noise.view(-1)[at] = torch.tensor(value, dtype=torch.float64).float()  # inf above float32's range
    try:
        out = make_unlearnable(images(), noise)
    except ValueError as err:
        assert "noise" in str(err)
        assert not finite(noise)  # a float64 above float32's range is inf in the tensor
        return
    assert finite(out) and out.min() >= 0 and out.max() <= 1


# --- LLM examples --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output", [True, False, None, 1.5, [1], {"a": 1}])
def test_llm_output_must_be_a_string(output):
    with rejected("output"):
        llm_poison([{"instruction": "say hi", "input": "", "output": output}], "badnet")


def test_llm_integer_output_is_still_read_as_a_string(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"instruction": "rate it", "input": "", "output": 0}]')
    assert load_examples(path)[0]["output"] == "0"


@pytest.mark.parametrize("beta", [math.nan, math.inf, -0.1, 1e7, "0.1", None])
def test_ssl_comparison_names_beta_before_training(beta):
    """NaN > 0 is False: `robustfast ldreg --beta nan` trained twice without LDReg and reported it as beta=nan."""
    from robustfast.lid.ssl import digits_comparison

    with rejected("beta"):
        digits_comparison(beta=beta, epochs=1)
