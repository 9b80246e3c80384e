"""make_unlearnable: sample-wise and class-wise application, the two uint8 quantisations, poison rate, bad input."""
import pytest
import torch

from robustfast.unlearnable import make_unlearnable, to_uint8

EPS = 8 / 255


@pytest.fixture
def data(tiny_digits):
    images, labels = tiny_digits
    g = torch.Generator().manual_seed(0)
    samplewise = (torch.rand(images.shape, generator=g) * 2 - 1) * EPS
    classwise = (torch.rand((10, *images.shape[1:]), generator=g) * 2 - 1) * EPS
    return images, labels, samplewise, classwise


def test_samplewise_adds_noise_and_stays_in_range(data):
    images, _, noise, _ = data
    out = make_unlearnable(images, noise)
    assert out.min() >= 0 and out.max() <= 1
    inside = ((images + noise) >= 0) & ((images + noise) <= 1)
    torch.testing.assert_close(out[inside], (images + noise)[inside])
    assert ((out - images).abs() <= EPS + 1e-6).all()


def test_classwise_indexes_the_noise_by_label(data):
    images, labels, _, noise = data
    out = make_unlearnable(images, noise, labels)
    torch.testing.assert_close(out, (images + noise[labels]).clamp(0, 1))


def test_signed_quantisation_keeps_negative_noise(data):
    images, _, noise, _ = data
    out = make_unlearnable(images, noise, quantize_uint8=True)
    big = out * 255
    torch.testing.assert_close(big, big.round(), atol=1e-4, rtol=0)  # values k/255
    want = torch.trunc((images * 255 + 255 * noise).clamp(0, 255)) / 255
    torch.testing.assert_close(out, want)
    assert (out < images - 1 / 255).any(), "signed mode subtracts where δ < 0"
    rounded = make_unlearnable(images, noise, quantize_uint8=True, rounding=True)
    torch.testing.assert_close(rounded, torch.round((images * 255 + 255 * noise).clamp(0, 255)) / 255)


def test_reference_quantisation_drops_negative_noise(data):
    images, _, noise, _ = data
    out = make_unlearnable(images, noise, quantize_uint8=True, quantization="reference")
    want = torch.trunc((images * 255 + (255 * noise).clamp(0, 255)).clamp(0, 255)) / 255
    torch.testing.assert_close(out, want)
    assert (out >= torch.trunc(images * 255) / 255 - 1e-6).all(), "reference mode never lowers a pixel"


def test_to_uint8_round_trips_quantised_images(data):
    images, _, noise, _ = data
    out = make_unlearnable(images, noise, quantize_uint8=True)
    stored = to_uint8(out)
    assert stored.dtype == torch.uint8
    torch.testing.assert_close(stored.float() / 255, out)


def test_poison_rate_noises_a_share_of_images_or_classes(data):
    images, labels, samplewise, classwise = data
    out = make_unlearnable(images, samplewise, poison_rate=0.25, seed=3)
    changed = (out != images).flatten(1).any(1)
    assert changed.sum() == round(0.25 * len(images))
    out = make_unlearnable(images, classwise, labels, poison_rate=0.3, seed=3)
    changed = (out != images).flatten(1).any(1)
    assert len(labels[changed].unique()) == 3
    assert torch.equal(make_unlearnable(images, samplewise, poison_rate=0.0), images)


def test_bad_input_names_the_argument(data):
    images, labels, samplewise, classwise = data
    with pytest.raises(ValueError, match="one δ per image"):
        make_unlearnable(images, samplewise[:-1])
    with pytest.raises(ValueError, match="labels must lie"):
        make_unlearnable(images, classwise[:5], labels)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        make_unlearnable(images, classwise, labels[:-1])
    with pytest.raises(ValueError, match="noise must be"):
        make_unlearnable(images, samplewise[:, :1])
    with pytest.raises(ValueError, match="quantization"):
        make_unlearnable(images, samplewise, quantize_uint8=True, quantization="floor")
    with pytest.raises(ValueError, match="poison_rate"):
        make_unlearnable(images, samplewise, poison_rate=1.5)
    with pytest.raises(ValueError, match="images must lie"):
        make_unlearnable(images + 1, samplewise)
