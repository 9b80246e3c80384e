"""`robustfast bench lid`'s faiss peer computes what knn_lid computes (search + LID), so the rows compare like
with like."""
import pytest
import torch

from robustfast.ops import knn_lid


def test_faiss_peer_gives_knn_lids_estimates():
    pytest.importorskip("faiss", reason="faiss-cpu comes with `make peers`")
    from robustfast.bench.lid import faiss_knn_lid

    g = torch.Generator().manual_seed(7)
    x = torch.randn(1500, 24, generator=g)
    x[40] = x[41]  # a duplicate pair: each is the other's nearest neighbour at distance 0
    mle, mom = faiss_knn_lid(x, 16)
    ours = knn_lid(x, k=16)
    assert mle.shape == mom.shape == (1500,)
    assert torch.allclose(mle, ours.mle, rtol=1e-4) and torch.allclose(mom, ours.mom, rtol=1e-3)
