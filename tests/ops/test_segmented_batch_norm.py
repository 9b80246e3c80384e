"""segmented_batch_norm: every backend against the reference, forward and backward; the reference against
BatchNorm2d run on each segment alone; gradcheck; bad arguments."""
import pytest
import torch
import torch.nn.functional as F

import robustfast
from robustfast.ops import segmented_batch_norm
from robustfast.reference.segmented_batch_norm import segmented_batch_norm as ref_fwd
from tests.conftest import DEVICE_BACKENDS

TOL = {torch.float32: 2e-5, torch.float64: 1e-11}


def _x(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (1.5 * torch.randn(shape, generator=g, dtype=torch.float64) + 0.3).to(dtype)


def test_reference_is_batch_norm_per_segment():
    x = _x((12, 5, 7, 3), 1)
    want = torch.cat([F.batch_norm(s, None, None, training=True, eps=1e-5) for s in x.split(4)])
    torch.testing.assert_close(ref_fwd(x, 4, 1e-5), want, rtol=0, atol=1e-12)


def test_reference_gradcheck():
    x = _x((6, 3, 4, 5), 2).requires_grad_()
    with robustfast.use_backend("reference"):
        assert torch.autograd.gradcheck(lambda t: segmented_batch_norm(t, 3), (x,))


@pytest.mark.parametrize("device,backend", DEVICE_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,segment", [((10, 3, 5, 9), 5), ((3, 4, 33), 3), ((4, 5), 2)])
def test_forward_and_backward_match_reference(device, backend, dtype, shape, segment):
    x = _x(shape, 3 + segment, dtype).to(device)
    g = _x(shape, 7 + segment, dtype).to(device)
    outs = []
    for b in ("reference", backend):
        xi = x.clone().requires_grad_()
        with robustfast.use_backend(b):
            y = segmented_batch_norm(xi, segment)
            (dx,) = torch.autograd.grad(y, xi, g)
        outs.append((y.detach(), dx))
    (y0, d0), (y1, d1) = outs
    torch.testing.assert_close(y1, y0, rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(d1, d0, rtol=10 * TOL[dtype], atol=10 * TOL[dtype])


def test_segments_are_independent():
    x = _x((8, 3, 4, 4), 11)
    y = segmented_batch_norm(x, 4, eps=1e-12)
    x2 = x.clone()
    x2[4:] = 5 * x2[4:] - 3  # an affine change of the second segment leaves both outputs as they were
    torch.testing.assert_close(segmented_batch_norm(x2, 4, eps=1e-12), y, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kwargs,name", [
    ({"x": torch.ones(4, 3, dtype=torch.int64), "segment": 2}, "x"),
    ({"x": torch.ones(4), "segment": 2}, "x"),
    ({"x": torch.rand(4, 3), "segment": 3}, "segment"),
    ({"x": torch.rand(4, 3), "segment": 0}, "segment"),
    ({"x": torch.rand(4, 3), "segment": 2, "eps": 0.0}, "eps"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        segmented_batch_norm(**kwargs)
