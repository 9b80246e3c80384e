"""`robustfast bench nas`: the C++ NMCS core against its Python oracle (in-core synthetic rewards, a batched torch
callback, classic level-1 NMCS), segmented_batch_norm against its reference, and child evaluations/s of the
supernet's batched forward_children against one child at a time. Ratios measured in one run."""
from __future__ import annotations

import statistics
import time

import torch

import robustfast
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.nas import NMCSTree, SearchSpace, Supernet, synthetic
from robustfast.ops import segmented_batch_norm

NOTE = "shared, loaded machine (2 threads, other jobs running); playout rows timed by process CPU time"


def _cpu_seconds(fn, repeats: int) -> float:
    """Median process CPU time of fn() over `repeats` runs: on a shared machine the single-threaded tree work is
    timed by the CPU it used, not by the wall clock that other jobs stretch."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _epoch_playouts(problem, backend: str, L: int, batch: int, repeats: int, reward=None) -> float:
    """Playouts/s of one epoch's simulations: a fresh tree, L playouts from the root, `batch` per reward call."""
    tree = NMCSTree(problem.arm_counts, seed=0, backend=backend)

    def run():
        tree.reset()
        tree.simulate(reward or problem, (), L=L, batch=batch)

    return L / _cpu_seconds(run, repeats)


def tree_rows() -> list[dict]:
    """C++ core against the oracle on the same work: per problem a fresh tree runs L = 20,480 playouts from the
    root (the spec's B·L_sim per epoch, 80 calls of 256); the oracle once, the core's median of 5. Always full
    size: seconds."""
    rows = []
    counts = [105, 231, 406, 630]
    L = 20_480
    for name, arms in (("separable DARTS 1-cell", counts), ("separable DARTS 2-cell", counts * 2)):
        problem = synthetic.Separable(arms, seed=0)
        cpp = _epoch_playouts(problem, "cpp", L, 1, 5)
        ref = _epoch_playouts(synthetic.Separable(arms, seed=0), "reference", L, 1, 1)
        rows.append({"what": f"playouts/s, {name}, in-core reward, fresh tree, L={L}", "fused": cpp,
                     "baseline": ref, "ratio": cpp / ref, "baseline_is": "Python oracle"})
        w = torch.tensor(problem.weights, dtype=torch.float64)
        offsets = torch.tensor([sum(arms[:d]) for d in range(len(arms))])

        def reward(paths, w=w, offsets=offsets):
            return w[paths + offsets].mean(1)

        cpp = _epoch_playouts(problem, "cpp", L, 256, 5, reward)
        ref = _epoch_playouts(problem, "reference", L, 256, 1, reward)
        rows.append({"what": f"playouts/s, {name}, torch callback (256 paths per call), fresh tree, L={L}",
                     "fused": cpp, "baseline": ref, "ratio": cpp / ref, "baseline_is": "Python oracle, same callback"})
    leftmost = synthetic.Leftmost(8, 10, seed=0)
    searches = 2_000
    rates = {}
    for backend in ("cpp", "reference"):
        tree = NMCSTree(leftmost.arm_counts, seed=0, backend=backend)
        rates[backend] = 80 * searches / _cpu_seconds(lambda t=tree: [t.nested(leftmost, 1) for _ in range(searches)],
                                                      3 if backend == "cpp" else 1)
    rows.append({"what": f"playouts/s, level-1 NMCS, leftmost D8K10 ({searches} searches of 80 playouts)",
                 "fused": rates["cpp"], "baseline": rates["reference"], "ratio": rates["cpp"] / rates["reference"],
                 "baseline_is": "Python oracle"})
    return rows


def sbn_rows(device: torch.device, quick: bool, repeats: int) -> list[dict]:
    shape = (64 * 8, 16, 16, 16) if quick else (64 * 32, 16, 32, 32)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device)

    def run(backend):
        with robustfast.use_backend(backend):
            return torch.autograd.grad(segmented_batch_norm(x, 64), x, g)

    backend = "cpp" if device.type == "cpu" else "triton"
    fused, _ = median_seconds(lambda: run(backend), device, repeats)
    ref, _ = median_seconds(lambda: run("reference"), device, repeats)
    return [{"what": f"segmented_batch_norm fwd+bwd {tuple(shape)}, segments of 64, {backend}",
             "fused": 1 / fused, "baseline": 1 / ref, "ratio": ref / fused, "baseline_is": "reference (calls/s)"}]


def supernet_rows(device: torch.device, quick: bool, repeats: int) -> list[dict]:
    b, side, P, layers = (16, 16, 8, 5) if quick else (64, 32, 32, 8)
    space = SearchSpace()
    torch.manual_seed(0)
    net = Supernet(space, C=16, layers=layers).to(device)
    x = torch.rand(b, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    gen = torch.Generator().manual_seed(1)
    children = [space.random(gen) for _ in range(P)]
    with torch.no_grad():
        batched, _ = median_seconds(lambda: net.forward_children(x, children), device, repeats)
        single, _ = median_seconds(lambda: [net(x, c) for c in children], device, repeats)
    return [{"what": f"child evaluations/s, {layers}-cell C=16 supernet, b={b}, {side}x{side}, P={P}",
             "fused": P / batched, "baseline": P / single, "ratio": single / batched,
             "baseline_is": "one child at a time"}]


def run(device: str = "cpu", quick: bool = False, repeats: int = 3, results: str = "benchmarks/results") -> list:
    dev = resolve_device(device)
    rows = tree_rows() + sbn_rows(dev, quick, repeats) + supernet_rows(dev, quick, repeats)
    for r in rows:
        r.update(device=str(dev), quick=quick, note=NOTE if dev.type == "cpu" else "")
    print(table(rows, ["what", "fused", "baseline", "ratio", "baseline_is"]))
    print(f"appended to {save(rows, dev, 'nas', results)}")
    return rows
