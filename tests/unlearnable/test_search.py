"""error_minimizing_noise on tiny real data: bounds, shapes, the class-wise rule, stop and cap, resume, bad input."""
import pytest
import torch

from robustfast.unlearnable import error_minimizing_noise
from robustfast.unlearnable import search as search_module
from robustfast.unlearnable.phases import class_mean_update, minimize_noise

from .helpers import TINY, tiny_model

EPS = 8 / 255


@pytest.mark.parametrize("kind", ["samplewise", "classwise"])
def test_noise_is_bounded_nonzero_and_shaped(tiny_digits, kind):
    images, labels = tiny_digits
    settings = {**TINY, "batch_size": 8} if kind == "classwise" else TINY
    noise, report = error_minimizing_noise(tiny_model(), images, labels, kind, max_rounds=2, **settings)
    rows = 10 if kind == "classwise" else len(images)
    assert noise.shape == (rows, 3, 32, 32) and noise.dtype == images.dtype
    assert noise.abs().max() <= EPS
    assert noise.abs().max() > 0.5 * EPS, "the search must move the noise"
    assert report.rounds == 2 and len(report.round_seconds) == 2
    assert all(0 <= e <= 1 for e in report.errors)


def test_samplewise_noise_lowers_each_samples_loss(tiny_digits):
    images, labels = tiny_digits
    model = tiny_model()
    noise, _ = error_minimizing_noise(model, images, labels, max_rounds=1, **TINY)
    model.eval()
    with torch.no_grad():
        clean = torch.nn.functional.cross_entropy(model(images), labels, reduction="none")
        noisy = torch.nn.functional.cross_entropy(model(images + noise), labels, reduction="none")
    # Descent, not ascent: the noise lowers the surrogate's loss on (almost) every sample.
    assert (noisy < clean).float().mean() >= 0.95


def test_model_mode_and_flags_are_restored(tiny_digits):
    images, labels = tiny_digits
    model = tiny_model().eval()
    model.fc.weight.requires_grad_(False)
    error_minimizing_noise(model, images, labels, max_rounds=1, **TINY)
    assert not model.training
    assert not model.fc.weight.requires_grad and model.fc.bias.requires_grad


def test_minimize_noise_equals_the_unfused_update(tiny_digits):
    """The fused step (pgd_step on the negated gradient) against the spec's update written out, element by element."""
    images, labels = tiny_digits
    model = tiny_model().eval()
    x0, y = images[:16], labels[:16]
    delta = (torch.rand(x0.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * EPS
    alpha = 0.8 / 255
    n = len(y)
    eta = minimize_noise(model, x0, y, delta, alpha=torch.full((n,), alpha), eps=torch.full((n,), EPS),
                         eps_value=EPS, steps=3, amp=False)
    x = (x0 + delta).clamp(0, 1)
    for _ in range(3):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)
        want = torch.clamp(x.detach() - alpha * g.sign() - x0, -EPS, EPS)
        x = (x0 + want).clamp(0, 1)
    torch.testing.assert_close(eta, want, atol=1e-6, rtol=0)
    assert ((x0 + eta) < 0).any() or ((x0 + eta) > 1).any(), "η is taken before the [0, 1] clamp"


def test_class_mean_update_equals_a_per_class_loop():
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(5, 3, 4, 4, generator=g) * 2 - 1) * EPS
    eta = (torch.rand(12, 3, 4, 4, generator=g) * 2 - 1) * EPS
    labels = torch.tensor([0, 2, 2, 4, 0, 0, 2, 4, 4, 4, 0, 2])  # class 1 and 3 absent
    got = class_mean_update(noise, eta, labels, EPS)
    for k in range(5):
        members = eta[labels == k]
        want = members.mean(0).clamp(-EPS, EPS) if len(members) else noise[k]
        torch.testing.assert_close(got[k], want)
    assert torch.equal(got[1], noise[1]) and torch.equal(got[3], noise[3])


def test_classwise_noise_is_shared_within_a_class(tiny_digits):
    images, labels = tiny_digits
    noise, _ = error_minimizing_noise(tiny_model(), images, labels, "classwise", max_rounds=2,
                                      **{**TINY, "batch_size": 8})
    # With a 20 % subset of 96 images, every class has members in it and so a noise of its own.
    assert (noise.flatten(1).abs().amax(1) > 0).all()
    assert not torch.allclose(noise[0], noise[1])


def test_stops_on_the_stop_test(tiny_digits):
    images, labels = tiny_digits
    # A stop error of 1 passes as soon as one sample is right: the search stops after round one.
    _, report = error_minimizing_noise(tiny_model(), images, labels, max_rounds=5, stop_error=1.0, **TINY)
    assert report.rounds == 1 and report.converged and not report.stopped_on_cap
    assert "stop test passed" in str(report)


def test_a_run_that_hits_the_cap_says_so(tiny_digits):
    images, labels = tiny_digits
    _, report = error_minimizing_noise(tiny_model(), images, labels, max_rounds=2, stop_error=0.0, **TINY)
    assert report.rounds == 2 and report.stopped_on_cap and not report.converged
    assert "cap of 2 rounds" in str(report)
    assert report.to_dict()["stopped_on_cap"] is True


@pytest.mark.parametrize("kind", ["samplewise", "classwise"])
def test_resume_after_interruption_equals_an_uninterrupted_run(tiny_digits, tmp_path, kind):
    images, labels = tiny_digits
    settings = {**TINY, "batch_size": 8, "stop_error": 0.0} if kind == "classwise" else {**TINY, "stop_error": 0.0}
    full_model = tiny_model()
    full, full_report = error_minimizing_noise(full_model, images, labels, kind, max_rounds=3, **settings)
    # "Interrupted" after two rounds: the checkpoint holds them; a fresh process builds a fresh surrogate.
    error_minimizing_noise(tiny_model(), images, labels, kind, max_rounds=2, checkpoint_dir=tmp_path, **settings)
    resumed_model = tiny_model(seed=7)  # its weights are replaced by the checkpoint's
    resumed, report = error_minimizing_noise(resumed_model, images, labels, kind, max_rounds=3,
                                             checkpoint_dir=tmp_path, **settings)
    assert report.rounds == 3 and len(report.round_seconds) == 3
    assert report.errors == full_report.errors
    assert torch.equal(resumed, full)
    for a, b in zip(resumed_model.state_dict().values(), full_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_crash_inside_a_round_resumes_from_the_last_finished_round(tiny_digits, tmp_path, monkeypatch):
    images, labels = tiny_digits
    settings = {**TINY, "stop_error": 0.0}
    full, _ = error_minimizing_noise(tiny_model(), images, labels, max_rounds=3, **settings)
    real, calls = search_module.minimize_noise, []

    def crashing(*args, **kwargs):  # dies in the middle of round 3 (3 batches per round)
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search_module, "minimize_noise", crashing)
    with pytest.raises(KeyboardInterrupt):
        error_minimizing_noise(tiny_model(), images, labels, max_rounds=3, checkpoint_dir=tmp_path, **settings)
    monkeypatch.setattr(search_module, "minimize_noise", real)
    resumed, report = error_minimizing_noise(tiny_model(seed=7), images, labels, max_rounds=3,
                                             checkpoint_dir=tmp_path, **settings)
    assert report.rounds == 3
    assert torch.equal(resumed, full)


def test_resume_refuses_other_settings(tiny_digits, tmp_path):
    images, labels = tiny_digits
    error_minimizing_noise(tiny_model(), images, labels, max_rounds=1, checkpoint_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match="eps"):
        error_minimizing_noise(tiny_model(), images, labels, max_rounds=2, checkpoint_dir=tmp_path, eps=4 / 255,
                               **TINY)


def test_checkpoint_is_safetensors_and_json(tiny_digits, tmp_path):
    images, labels = tiny_digits
    error_minimizing_noise(tiny_model(), images, labels, max_rounds=1, checkpoint_dir=tmp_path, **TINY)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-000001.safetensors", "checkpoint.json"]


@pytest.mark.parametrize("kwargs,name", [
    ({"eps": 0.0}, "eps"),
    ({"eps": -1 / 255}, "eps"),
    ({"steps": 0}, "steps"),
    ({"train_steps": 0}, "train_steps"),
    ({"max_rounds": 0}, "max_rounds"),
    ({"step_size": 0.0}, "step_size"),
    ({"stop_error": 1.5}, "stop_error"),
    ({"kind": "pixelwise"}, "kind"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_settings_name_the_argument(tiny_digits, kwargs, name):
    images, labels = tiny_digits
    with pytest.raises(ValueError, match=name):
        error_minimizing_noise(tiny_model(), images, labels, **{**TINY, **kwargs})


def test_bad_data_names_the_argument(tiny_digits):
    images, labels = tiny_digits
    model = tiny_model()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        error_minimizing_noise(model, images, torch.where(labels == 3, 10, labels), **TINY)
    with pytest.raises(ValueError, match=r"labels must lie"):
        error_minimizing_noise(model, images, labels - 1, **TINY)
    with pytest.raises(ValueError, match="labels must have shape"):
        error_minimizing_noise(model, images, labels[:-1], **TINY)
    with pytest.raises(ValueError, match="images must lie in"):
        error_minimizing_noise(model, images * 2, labels, **TINY)
    with pytest.raises(ValueError, match="batch_size 64 is larger"):
        error_minimizing_noise(model, images, labels, "classwise", **{**TINY, "batch_size": 64})


@pytest.mark.parametrize("option", ["exact", "amp"])
def test_rounding_options_keep_the_bounds(tiny_digits, option):
    images, labels = tiny_digits
    plain, _ = error_minimizing_noise(tiny_model(), images, labels, max_rounds=1, **TINY)
    noise, report = error_minimizing_noise(tiny_model(), images, labels, max_rounds=1, **{option: True}, **TINY)
    assert noise.shape == images.shape and noise.is_contiguous() and noise.abs().max() <= EPS
    assert report.rounds == 1
    # The folded channels_last copy (the default) changes the order of float sums, bf16 the rounding of the
    # gradients: near-zero gradients may flip sign, the rest agree (unrelated noise would agree on about half).
    agree = (noise.sign() == plain.sign()).float().mean()
    assert agree >= (0.95 if option == "exact" else 0.8), f"{option}: signs agree on {agree:.3f}"
