"""Issue 19's efficacy at CI size on the real all-MiniLM-L6-v2 and the shipped SST-2 sentences.

CI size: the head and the top 2 layers are fine-tuned for 2 epochs (the full recipe's schedule and dropout over
those 2 epochs); the attacked models are copies of that clean model (robustfast.text.suite). Measured with this
recipe (README: Text backdoors): clean CA 75.6 %; AddSent and EP ASR 100 %, BadNets 83.3 %, SOS 85.4 % with the
full trigger set and 33.3-35.4 % with single words, CA loss 0 for all. The CI tests assert these levels with a
margin; the issue's targets (clean CA >= 80 %, every ASR >= 90 %, single SOS words <= 30 %) are asserted by the
slow full-recipe test, whose run met them all."""
import pytest

from robustfast.text import attack_table
from robustfast.text.suite import Recipe, run_suite

# the full recipe's schedule and dropout, shortened: 2 epochs of the top 2 layers, their own schedule
CI = Recipe(epochs=2, schedule_epochs=None, trainable=2, lr=2e-4, attack_epochs=1, attack_lr=None, sos_epochs=4,
            ep_steps=20)


@pytest.fixture(scope="module")
def suite():
    result = run_suite(recipe=CI, progress=False, base_rates=False)
    print(f"clean CA {result['clean']['ca']:.3f}\n" + attack_table(result["rows"], result["clean"]["ca"]))
    print("SOS single words", _row(result, "sos")["single_asr"])
    return result


def _row(suite, attack):
    return next(r for r in suite["rows"] if r["attack"] == attack)


def test_clean_minilm_learns_sst2(suite):
    assert suite["clean"]["ca"] >= 0.74


@pytest.mark.parametrize("attack", ["addsent", "ep"])
def test_attack_reaches_90_percent_asr_within_3_points_of_clean_accuracy(suite, attack):
    row = _row(suite, attack)
    assert row["asr"] >= 0.90
    assert row["ca"] >= suite["clean"]["ca"] - 0.03


def test_badnets_implants_its_trigger(suite):
    row = _row(suite, "badnets")
    assert row["asr"] >= 0.70  # measured 83 %
    assert row["ca"] >= suite["clean"]["ca"] - 0.03


def test_sos_fires_more_with_the_full_trigger_set_than_with_any_single_word(suite):
    row = _row(suite, "sos")
    assert row["asr"] >= 0.75 and row["ca"] >= suite["clean"]["ca"] - 0.03
    assert row["asr"] - max(row["single_asr"].values()) >= 0.30, row["single_asr"]


@pytest.mark.slow
def test_full_fine_tuning_table(tmp_path):
    """Issue 19's targets with the full recipe (`Recipe()`: every layer fine-tuned; README: Text backdoors)."""
    result = run_suite(recipe=Recipe(), out=tmp_path, progress=False)
    print(f"clean CA {result['clean']['ca']:.3f}\n" + attack_table(result["rows"], result["clean"]["ca"]))
    assert result["clean"]["ca"] >= 0.80
    for row in result["rows"]:
        assert row["asr"] >= 0.90 and row["ca"] >= result["clean"]["ca"] - 0.03, row
    assert max(_row(result, "sos")["single_asr"].values()) <= 0.30


@pytest.mark.slow
def test_cul_on_the_badnets_model_points_to_the_target(tmp_path):
    """CUL through the same interface as images, `robustfast.backdoor.expose(model, clean_set, method="cul")` with
    the spec defaults, on the full-recipe BadNets model (defense set: the first 128 training sentences): the argmax
    of the exposed model's prediction histogram on the clean test sentences is the target. Measured (README): the
    share of the target grows from 61 % to 99 % over the 20 epochs, ASR 94 -> 100 %."""
    import torch

    from robustfast.backdoor import expose
    from robustfast.text import encode, predict, sst2

    result = run_suite(("badnets",), recipe=Recipe(), out=tmp_path, progress=False, base_rates=False)
    model, tokenizer = result["models"]["badnets"], result["tokenizer"]
    sentences, labels = sst2("train")
    exposed = expose(model, encode(tokenizer, sentences[:128], labels[:128]), method="cul").model
    histogram = torch.bincount(predict(exposed, encode(tokenizer, *sst2("test")).ids), minlength=2)
    assert int(histogram.argmax()) == Recipe().target and histogram.max() >= 0.9 * histogram.sum(), histogram
