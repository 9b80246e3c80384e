"""GPU-only checks of knn_lid at the sizes of the issue: N = 20,000, D = 50 against the reference on a slice of
queries, and N = 1,000,000 in memory O(N·k). Skipped on machines without CUDA."""
import pytest
import torch

import robustfast
from robustfast.ops import knn_lid
from robustfast.reference import knn_lid as reference

pytestmark = pytest.mark.gpu


def test_twenty_thousand_points_match_the_reference():
    x = torch.randn(20_000, 50, generator=torch.Generator().manual_seed(0)).cuda()
    with robustfast.use_backend("triton"):
        out = knn_lid(x, k=[20, 64])
    rows = slice(0, 2000)
    dist, _, mle, mom = reference.knn_lid(x[rows].double(), x.double(), [20, 64], "literature", 0)
    assert (out.distances[rows].double() - dist).abs().max().item() <= 1e-5 * dist.max().item()
    assert ((out.mle[rows].double() - mle).abs() / mle).max().item() <= 2e-4
    assert ((out.mom[rows].double() - mom).abs() / mom).max().item() <= 2e-4


def test_a_million_points_in_bounded_memory():
    n, d, k = 1_000_000, 50, 20
    x = torch.randn(n, d, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with robustfast.use_backend("triton"):
        out = knn_lid(x, k=k)
    extra = torch.cuda.max_memory_allocated() - base
    assert torch.isfinite(out.mle).all()
    assert extra < 64 * n * 8 * 3  # outputs, keys and norms: O(N·k), far below the 4 TB of an N×N matrix
