"""Plain-PyTorch definition of segmented_batch_norm: batch norm without affine parameters, with statistics per
(segment, channel), a segment being `segment` consecutive samples of x (N, C, *spatial), N = S·segment.

    forward:  ŷ = (x − μ)/σ̂, σ̂ = sqrt(σ² + ε), μ and the biased σ² over the segment's samples and positions
    backward: dx = (g − mean g − ŷ·mean(g·ŷ))/σ̂, the means per segment and channel

It lets several children of a weight-sharing supernet run as one batch while each is normalised by its own batch
statistics. Arithmetic in float32 (float64 for float64 data), rounded once to x's dtype.
"""
import torch

from robustfast._util.checks import opmath_dtype


def _grouped(x: torch.Tensor, segment: int) -> torch.Tensor:
    n, c = x.shape[:2]
    return x.to(opmath_dtype(x.dtype)).reshape(n // segment, segment, c, -1)


def _normalised(xs: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    mean = xs.mean(dim=(1, 3), keepdim=True)
    var = (xs - mean).square().mean(dim=(1, 3), keepdim=True)
    rstd = torch.rsqrt(var + eps)
    return (xs - mean) * rstd, rstd


def segmented_batch_norm(x: torch.Tensor, segment: int, eps: float) -> torch.Tensor:
    yhat, _ = _normalised(_grouped(x, segment), eps)
    return yhat.reshape(x.shape).to(x.dtype)


def segmented_batch_norm_backward(grad: torch.Tensor, x: torch.Tensor, segment: int, eps: float) -> torch.Tensor:
    yhat, rstd = _normalised(_grouped(x, segment), eps)
    g = _grouped(grad, segment)
    dx = (g - g.mean(dim=(1, 3), keepdim=True) - yhat * (g * yhat).mean(dim=(1, 3), keepdim=True)) * rstd
    return dx.reshape(x.shape).to(x.dtype)
