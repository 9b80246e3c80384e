"""`robustfast bench lid`: knn_lid (self, MLE and MoM, k = 20) time and peak memory beside what users run today:
cdist + topk (an N×N matrix), scikit-dimension's pointwise MLE, faiss-cpu's exact search (IndexFlatL2) followed
by the same estimators, each where it fits (faiss-cpu comes with `make peers`).

Peak memory on the CPU is the peak resident set size above the one before the call, sampled every 2 ms from
/proc/self/statm (tracemalloc cannot see torch's allocations); on a GPU it is torch's allocator peak above the
memory allocated before the call.
"""
from __future__ import annotations

import functools
import os
import threading
import time

import torch

import robustfast
from robustfast import _backend
from robustfast._util.device import resolve_device
from robustfast._util.tables import save, table
from robustfast.ops import knn_lid
from robustfast.reference import knn_lid as reference

K = 20
TORCHID_H100_MS = 12.9  # torchid's published time for N = 20,000, D = 50 on an H100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class _RssPeak:
    """Samples the resident set size in a thread while the block runs."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def measure(fn, device: torch.device) -> tuple[float, float, object]:
    """(seconds, peak MB above the start, result) of one call of fn()."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        return seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20, result
    with _RssPeak() as peak:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return seconds, (peak.peak - peak.base) / 2**20, result


def points(n: int, d: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g).to(device)


def _cdist_topk(x: torch.Tensor):
    """What users run today: the full distance matrix, the diagonal masked, topk, the estimators."""
    return reference.knn_lid(x, x, [K], "literature", 0)


def _skdim_mle(x: torch.Tensor):
    import skdim

    return skdim.id.MLE().fit(x.cpu().numpy(), n_neighbors=K).dimension_pw_


def faiss_knn_lid(x: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    """The strongest CPU peer of knn_lid: faiss-cpu's exact IndexFlatL2 search of every point against all, then
    the literature MLE and MoM from its k nearest non-self distances: (mle (N,), mom (N,)) as float32.

    faiss returns squared GEMM-form distances for k + 1 neighbours; each point's own row is dropped by index
    (else the farthest of the k + 1), the distances are square-rooted and the estimators are the reference's."""
    import faiss

    xs = x.detach().cpu().float().contiguous().numpy()
    index = faiss.IndexFlatL2(xs.shape[1])
    index.add(xs)
    sq, ids = index.search(xs, k + 1)
    sq, ids = torch.from_numpy(sq), torch.from_numpy(ids)
    is_self = ids == torch.arange(len(xs))[:, None]
    drop = torch.where(is_self.any(dim=1), is_self.float().argmax(dim=1), torch.full((len(xs),), k))
    keep = torch.ones_like(is_self).scatter_(1, drop[:, None], False)
    dist = sq[keep].view(len(xs), k).clamp_min(0).sqrt()
    mle, mom = reference.estimators(dist, [k], "literature")
    return mle[:, 0], mom[:, 0]


def _row(what, impl, device, n, d, seconds, peak_mb, note=""):
    return {"what": what, "impl": impl, "device": device.type, "dtype": "float32", "shape": f"{n}x{d}, k={K}",
            "s": seconds, "peak_MB": peak_mb, "note": note}


def _ours(device: torch.device, n: int, d: int, backend: str) -> dict:
    x = points(n, d, device)
    with robustfast.use_backend(backend):
        knn_lid(points(256, d, device), k=K)  # compiles the Triton kernels before the timed call
        seconds, peak, _ = measure(functools.partial(knn_lid, x, k=K), device)
    return _row("knn_lid self", f"robustfast ({backend})", device, n, d, seconds, peak)


def _cdist_row(device: torch.device, n: int, d: int, limit_gb: float) -> dict:
    need_gb = 2 * n * n * 4 / 2**30  # the matrix and topk's working copy
    if need_gb > limit_gb:
        return _row("knn_lid self", "cdist + topk", device, n, d, None, None,
                    f"skipped: needs ~{need_gb:.0f} GB for the N×N matrix")
    x = points(n, d, device)
    seconds, peak, _ = measure(functools.partial(_cdist_topk, x), device)
    return _row("knn_lid self", "cdist + topk", device, n, d, seconds, peak)


def _peer_row(name: str, fn, device: torch.device, n: int, d: int, what: str) -> dict:
    x = points(n, d, torch.device("cpu"))
    try:
        seconds, peak, _ = measure(functools.partial(fn, x), torch.device("cpu"))
    except ImportError as exc:
        return _row(what, name, device, n, d, None, None, f"not installed ({exc.name})")
    return _row(what, name, torch.device("cpu"), n, d, seconds, peak)


def cpu_rows(quick: bool, limit_gb: float) -> list[dict]:
    cpu = torch.device("cpu")
    big, mid, small, d = (3000, 3000, 1000, 64) if quick else (100_000, 20_000, 5000, 64)
    backend = "cpp" if _backend.why_not("cpp", cpu) is None else "reference"
    rows = [_ours(cpu, big, d, backend), _cdist_row(cpu, big, d, limit_gb)]
    if mid != big:
        rows += [_ours(cpu, mid, d, backend), _cdist_row(cpu, mid, d, limit_gb)]
    rows += [_ours(cpu, small, d, backend),
             _peer_row("scikit-dimension MLE (pointwise)", _skdim_mle, cpu, small, d, "knn_lid self"),
             _peer_row("faiss-cpu IndexFlatL2 + LID (MLE, MoM)", faiss_knn_lid, cpu, big, d, "knn_lid self")]
    return rows


def gpu_rows(quick: bool, limit_gb: float) -> list[dict]:
    gpu = torch.device("cuda")
    n, d = (4000, 50) if quick else (20_000, 50)
    rows = [_ours(gpu, n, d, "triton"), _cdist_row(gpu, n, d, limit_gb),
            _row("knn_lid self", "torchid (published, H100)", gpu, 20_000, 50, TORCHID_H100_MS / 1e3, None,
                 "their number, not measured here")]
    rows.append(_ours(gpu, 100_000 if quick else 1_000_000, d, "triton"))
    return rows


def run(device: str, quick: bool, limit_gb: float, results: str) -> list[dict]:
    dev = resolve_device(device)
    rows = gpu_rows(quick, limit_gb) if dev.type == "cuda" else cpu_rows(quick, limit_gb)
    print(table(rows, ["what", "impl", "device", "dtype", "shape", "s", "peak_MB", "note"]))
    print(f"wrote {save(rows, dev, 'lid', results)}")
    return rows
