"""DTA's mechanics on a small random ViT: the attack lowers the cosine at its layer within the ε-ball, the batched
layer search equals separate attacks, the step loop reads nothing back to the host, the baselines and helpers."""
import pytest
import torch

from robustfast.attacks import DTA, transfer_asr
from robustfast.attacks.dta import adversary, criterion_scores, layer_sweep, random_noise
from robustfast.models.vit import Classifier, build_vit, wrap
from robustfast.ops import token_cosine
from tests.ops.test_host_reads import counting_host_reads


@pytest.fixture(scope="module")
def encoder():
    return wrap(build_vit(seed=3, num_hidden_layers=4)).eval()


def images(n=6, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", [{}, {"reduction": "flat", "tokens": "patch"}, {"features": "normed"},
                                {"return_best": True}, {"loss": "l2"}])
def test_attack_lowers_the_cosine_at_its_layer_inside_the_ball(encoder, kw):
    x = images()
    adv = DTA(encoder, eps=16 / 255, steps=5, layer=2, **kw)(x)
    assert (adv - x).abs().max() <= 16 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        h0, h1 = encoder.tokens(x, 2)[-1], encoder.tokens(adv, 2)[-1]
        noise = encoder.tokens(random_noise(x, 16 / 255, seed=2), 2)[-1]
    if kw.get("loss") == "l2":
        assert (h1 - h0).norm() > 1.2 * (noise - h0).norm()
    else:
        assert token_cosine(h1, h0).mean() < token_cosine(noise, h0).mean() - 0.01


def test_same_seed_same_result_and_labels_are_optional(encoder):
    x = images()
    a = DTA(encoder, eps=8 / 255, steps=3, layer=1, seed=4)(x)
    b = DTA(encoder, eps=8 / 255, steps=3, layer=1, seed=4)(x, torch.zeros(6, dtype=torch.long))
    assert torch.equal(a, b)


def test_batched_layer_search_equals_separate_attacks(encoder):
    probe = images(4, 1)
    dta = DTA(encoder, eps=16 / 255, steps=4, probe=probe, candidates=[1, 2, 3])
    batched, separate = dta.search_layer(probe), dta.search_layer(probe, batched=False)
    assert batched.profile.shape == (3, 4)
    torch.testing.assert_close(batched.profile, separate.profile, rtol=1e-4, atol=1e-4)
    assert batched.layer == separate.layer == min(batched.scores, key=batched.scores.get)


def test_criteria_read_the_profile_as_specified():
    prof = torch.tensor([[0.1, 0.5, 0.9], [0.6, 0.2, 0.3]])
    torch.testing.assert_close(criterion_scores(prof, [1, 2], "mean"), prof.mean(1))
    torch.testing.assert_close(criterion_scores(prof, [1, 2], "self"), torch.tensor([0.1, 0.2]))
    torch.testing.assert_close(criterion_scores(prof, [1, 2], "final"), torch.tensor([0.9, 0.3]))
    torch.testing.assert_close(criterion_scores(prof, [1, 2], "from"), torch.tensor([0.5, 0.25]))


def test_step_loop_reads_nothing_back_to_the_host(encoder, monkeypatch):
    x = images(4)
    dta = DTA(encoder, eps=8 / 255, steps=2, layer=2)
    dta.attack_at(x, 2)  # warm-up
    with counting_host_reads(monkeypatch) as calls:
        dta.attack_at(x, 2, steps=2)
    with counting_host_reads(monkeypatch) as more:
        dta.attack_at(x, 2, steps=6)
    assert len(more) == len(calls), (calls, more)


def test_per_sample_mode_and_the_helpers(encoder):
    x, y = images(4), torch.arange(4) % 5
    adv = DTA(encoder, eps=8 / 255, steps=1, mode="per_sample", probe=x, candidates=[1, 2])(x)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    victim = Classifier(encoder, 5).eval()
    r = transfer_asr(victim, x, random_noise(x, 8 / 255, seed=1), y)
    assert set(r) == {"asr", "clean_acc", "adv_acc", "n"} and 0 <= r["asr"] <= 1
    sweep = layer_sweep(encoder, victim, x, y, layers=[1, 2], eps=8 / 255, steps=1)
    assert set(sweep) == {1, 2}
    craft = adversary(layer=1, eps=8 / 255, steps=1)
    assert craft(victim, x).shape == x.shape
