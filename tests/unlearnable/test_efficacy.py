"""What the noise must achieve on real data: a model trained on unlearnable digits (3×32×32) is at least 40 points
less accurate on the clean test set than the same model trained on the clean digits (which reaches ≥ 90 %).

Fast settings for 2 CPU cores: a 4-wide small CNN surrogate, batches of 128, and (sample-wise) 5 steps of
α = 1.6/255 per update instead of 20 of 0.8/255; the victim is an 8-wide small CNN trained 8 epochs.
"""
import pytest
import torch

from robustfast.unlearnable import make_unlearnable
from robustfast.unlearnable.digits import digits_noise, digits_sets, unlearnable_set, victim_accuracy

SEARCH = {
    "samplewise": {"batch_size": 128, "steps": 5, "step_size": 1.6 / 255, "max_rounds": 20},
    "classwise": {"batch_size": 64, "max_rounds": 20},
}
VICTIM_EPOCHS = 8


@pytest.fixture(scope="module")
def sets():
    return digits_sets()


@pytest.fixture(scope="module")
def clean_accuracy(sets):
    train, test = sets
    acc = victim_accuracy(train, test, epochs=VICTIM_EPOCHS)
    assert acc >= 0.90, f"the victim must learn clean digits for the comparison to mean anything ({acc:.3f})"
    return acc


@pytest.mark.parametrize("kind", ["samplewise", "classwise"])
def test_unlearnable_digits_are_not_learned(sets, clean_accuracy, kind):
    train, test = sets
    noise, report = digits_noise(train, kind, progress=False, **SEARCH[kind])
    assert noise.abs().max() <= 8 / 255
    assert report.converged, str(report)
    poisoned = unlearnable_set(train, noise, kind, quantize_uint8=True)
    images = poisoned.tensors[0]
    assert images.min() >= 0 and images.max() <= 1
    accuracy = victim_accuracy(poisoned, test, epochs=VICTIM_EPOCHS)
    print(f"{kind}: clean-trained {clean_accuracy:.3f}, unlearnable-trained {accuracy:.3f} ({report})")
    assert accuracy <= clean_accuracy - 0.40, f"{kind}: {accuracy:.3f} vs clean {clean_accuracy:.3f}"


@pytest.mark.slow
def test_random_noise_of_the_same_size_is_learned(sets, clean_accuracy):
    """The control: uniform noise in [−ε, ε] leaves the digits learnable, so the drop above is the search's doing."""
    train, test = sets
    images, labels = train.tensors
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(images.shape, generator=g) * 2 - 1) * 8 / 255
    noisy = torch.utils.data.TensorDataset(make_unlearnable(images, noise, quantize_uint8=True), labels)
    assert victim_accuracy(noisy, test, epochs=VICTIM_EPOCHS) >= clean_accuracy - 0.05
