"""Building the unlearnable data set: x' = x + δ, in [0, 1], optionally quantised to uint8 (spec §4)."""
from __future__ import annotations

import numbers

import torch

from robustfast._util.checks import check_float_tensor, check_images

QUANTIZATIONS = ("signed", "reference")


def _poisoned_rows(rows: int, rate: float, seed: int, device) -> torch.Tensor | None:
    """Bool mask of the rows (images or classes) that receive noise: a seeded choice of round(rate·rows)."""
    if rate == 1.0:
        return None
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(rows, dtype=torch.bool)
    mask[torch.randperm(rows, generator=g)[:round(rate * rows)]] = True
    return mask.to(device)


def _check(images, noise, labels, quantization, poison_rate) -> None:
    check_images(images)
    check_float_tensor(noise, "noise")
    if noise.dim() != 4 or noise.shape[1:] != images.shape[1:]:
        raise ValueError(f"noise must be K×{'×'.join(map(str, images.shape[1:]))} (one δ per image, or per class "
                         f"with labels), got shape {tuple(noise.shape)}")
    if noise.device != images.device:
        raise ValueError(f"noise is on {noise.device} but images are on {images.device}")
    if not torch.isfinite(noise).all():  # NaN survives the clamp into x' (clamp(NaN) is NaN)
        raise ValueError("noise contains NaN or inf; it must be finite")
    if labels is None and noise.shape[0] != images.shape[0]:
        raise ValueError(f"sample-wise noise needs one δ per image: noise has {noise.shape[0]} rows for "
                         f"{images.shape[0]} images (pass labels to apply class-wise noise)")
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],) or labels.is_floating_point():
            raise ValueError(f"labels must be an integer tensor of shape ({images.shape[0]},), got "
                             f"{getattr(labels, 'shape', type(labels).__name__)}")
        if labels.min().item() < 0 or labels.max().item() >= noise.shape[0]:
            raise ValueError(f"labels must lie in [0, {noise.shape[0]}) to index the class-wise noise, got "
                             f"values in [{labels.min().item()}, {labels.max().item()}]")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if isinstance(poison_rate, bool) or not isinstance(poison_rate, numbers.Real) or not 0 <= poison_rate <= 1:
        raise ValueError(f"poison_rate must be a number in [0, 1], got {poison_rate!r}")


def make_unlearnable(images: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor | None = None, *,
                     quantize_uint8: bool = False, quantization: str = "signed", rounding: bool = False,
                     poison_rate: float = 1.0, seed: int = 0) -> torch.Tensor:
    """The unlearnable images x' (float, N×C×H×W, in [0, 1]) from images in [0, 1] and the noise of
    `error_minimizing_noise`.

    Sample-wise noise (N×C×H×W) is added image by image; with `labels`, noise is class-wise (K×C×H×W) and image i
    receives δ_{labels[i]}. Without quantisation x' = clamp(x + δ, 0, 1). With `quantize_uint8`, x' takes the
    values k/255 of a uint8 image (X = 255·x):
      quantization="signed" (the method as defined): clip(X + 255·δ, 0, 255), truncated (or rounded with `rounding`);
      quantization="reference" (the published dataset builder, for parity): trunc(clip(X + clip(255·δ, 0, 255),
        0, 255)), which drops the negative noise components.
    `poison_rate` < 1 noises a seeded share of the images (sample-wise) or of the classes (class-wise).
    """
    _check(images, noise, labels, quantization, poison_rate)
    delta = noise.to(images.dtype)
    rows = _poisoned_rows(noise.shape[0], float(poison_rate), seed, images.device)
    if rows is not None:
        delta = delta * rows.to(delta.dtype).view(-1, 1, 1, 1)
    if labels is not None:
        delta = delta[labels.long()]
    if not quantize_uint8:
        return (images + delta).clamp_(0, 1)
    big = images * 255
    if quantization == "reference":
        out = (big + (255 * delta).clamp_(0, 255)).clamp_(0, 255).trunc_()
    else:
        out = (big + 255 * delta).clamp_(0, 255)
        out = out.round_() if rounding else out.trunc_()
    return out.div_(255)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Quantised images (values k/255) as the uint8 tensor they came from, for storage."""
    return (images * 255).round_().to(torch.uint8)
