"""The exact search against the loop written the published way, on the same tiny case: same batches, same noise."""
import pytest
import torch

from robustfast.unlearnable.published import error_minimizing_noise_reference
from robustfast.unlearnable import error_minimizing_noise

from .helpers import TINY, tiny_model


@pytest.mark.parametrize("kind,batch_size", [("samplewise", 40), ("classwise", 8)])
def test_exact_search_matches_the_published_loop(tiny_digits, kind, batch_size):
    images, labels = tiny_digits
    settings = {"batch_size": batch_size, "steps": 3, "train_steps": 2, "max_rounds": 3, "stop_error": 0.0}
    fast_model, ref_model = tiny_model(width=8), tiny_model(width=8)
    fast, report = error_minimizing_noise(fast_model, images, labels, kind, progress=False, exact=True, **settings)
    ref, errors = error_minimizing_noise_reference(ref_model, images, labels, kind, **settings)
    # batch 40 over 96 images: two full batches and a short one, as in the spec's 98th batch of 336.
    assert report.rounds == len(errors) == 3
    # Same arithmetic in float32, except that η is rounded once more in the fused path (x₀ + η − x₀).
    assert (fast - ref).abs().max() <= 1e-6
    assert report.errors == pytest.approx(errors, abs=1e-6)
    for a, b in zip(fast_model.state_dict().values(), ref_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert fast.abs().max() > 0.5 * 8 / 255, "parity on noise that moved"


def test_reference_rejects_an_unknown_kind(tiny_digits):
    images, labels = tiny_digits
    kwargs = {k: v for k, v in TINY.items() if k != "progress"}
    with pytest.raises(ValueError, match="kind"):
        error_minimizing_noise_reference(tiny_model(), images, labels, "pixelwise", **kwargs)
