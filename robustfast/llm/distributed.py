"""Process-group setup shared by one-process and multi-rank runs (`torchrun`, the `deepspeed` launcher).

A run started without a launcher becomes a world of one, so the training code has one path. CPU ranks talk
over gloo; DeepSpeed's CPU accelerator is selected with DS_ACCELERATOR=cpu (it needs no oneCCL or Intel
extension: without oneccl_bindings_for_pytorch it reports gloo as its backend).

DeepSpeed 0.19.8 on CPU would also JIT-compile its shared-memory allreduce op with the C++ compiler when the
process group is created (deepspeed/comm/torch.py, `build_shm_op`), after probing every op builder: minutes
on a small machine, for a speed-up gloo does not need. On CPU we mark its JIT ops unavailable instead
(`deepspeed.ops.__compatible_ops__`), so nothing is compiled; training uses torch's AdamW, never a JIT op.
"""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def device() -> torch.device:
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_env() -> None:
    if "RANK" not in os.environ:
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())})


def init(use_deepspeed: bool) -> bool:
    """Join the process group (a world of one when no launcher started us): nccl on GPUs, gloo on CPUs.
    Returns whether this call created it (the caller then ends it with `shutdown`)."""
    if dist.is_initialized():
        return False
    _single_process_env()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    if use_deepspeed:
        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
            # The CPU accelerator counts devices from LOCAL_SIZE (else by NUMA nodes via numactl).
            os.environ.setdefault("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1"))
        import deepspeed
        import deepspeed.ops

        if not torch.cuda.is_available():
            deepspeed.ops.__compatible_ops__ = {}
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
    else:
        dist.init_process_group(backend)
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def mean(value: float) -> float:
    """The mean of a float over the ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device() if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()
