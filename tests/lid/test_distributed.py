"""LDReg under torch.distributed (gloo, two CPU ranks): each rank's regulariser sees the gathered reference."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from robustfast.lid import LDReg
from robustfast.ops import knn_lid

B, D, K = 24, 6, 5


def _features(rank: int) -> torch.Tensor:
    return torch.randn(B, D, generator=torch.Generator().manual_seed(100 + rank))


def _worker(rank: int, init_file: str, results):
    torch.set_num_threads(1)  # two ranks on two cores
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        feats = _features(rank).requires_grad_(True)
        log_lid = LDReg(beta=1.0, k=K).log_lid(feats)
        log_lid.sum().backward()
        results[rank] = (log_lid.detach(), feats.grad)
    finally:
        dist.destroy_process_group()


def test_ldreg_gathers_a_detached_reference_across_ranks(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    everyone = torch.cat([_features(0), _features(1)])
    for rank in (0, 1):
        feats = _features(rank).requires_grad_(True)
        want = knn_lid(feats, everyone, k=K, self_offset=rank * B).mom.log()
        want.sum().backward()
        got, grad = results[rank]
        assert torch.allclose(got, want.detach(), rtol=1e-5)
        assert torch.allclose(grad, feats.grad, rtol=1e-4, atol=1e-6)
