"""`robustfast bench nas`: the C++ NMCS core against its Python oracle (in-core synthetic rewards, a batched torch
callback, classic level-1 NMCS), segmented_batch_norm against its reference, and child evaluations/s of the
supernet's batched forward_children against one child at a time. Ratios measured in one run."""
from __future__ import annotations

import time

import torch

import robustfast
from robustfast._util.device import resolve_device
from robustfast._util.tables import median_seconds, save, table
from robustfast.nas import NMCSTree, SearchSpace, Supernet, nested_search, synthetic
from robustfast.ops import segmented_batch_norm

NOTE = "shared, loaded machine (2 threads, other jobs running)"


def _rate(fn, units: int, min_seconds: float) -> float:
    """units per second of fn() (repeated until min_seconds have passed)."""
    done, start = 0, time.perf_counter()
    while True:
        fn()
        done += units
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def _playouts(problem, backend: str, L: int, batch: int, reward=None) -> float:
    tree = NMCSTree(problem.arm_counts, seed=0, backend=backend)
    return _rate(lambda: tree.simulate(reward or problem, (), L=L, batch=batch), L, 1.0)


def tree_rows(quick: bool) -> list[dict]:
    """Always full size: the tree rows take seconds."""
    rows = []
    counts = [105, 231, 406, 630]
    for name, arms in (("separable DARTS 1-cell", counts), ("separable DARTS 2-cell", counts * 2)):
        problem = synthetic.Separable(arms, seed=0)
        cpp = _playouts(problem, "cpp", 20_000 if not quick else 2_000, 1)
        ref = _playouts(synthetic.Separable(arms, seed=0), "reference", 2_000 if not quick else 200, 1)
        rows.append({"what": f"playouts/s, {name}, in-core reward", "fused": cpp, "baseline": ref,
                     "ratio": cpp / ref, "baseline_is": "Python oracle"})
        w = torch.tensor(problem.weights, dtype=torch.float64)
        offsets = torch.tensor([sum(arms[:d]) for d in range(len(arms))])

        def reward(paths, w=w, offsets=offsets):
            return w[paths + offsets].mean(1)

        cpp = _playouts(problem, "cpp", 25_600 if not quick else 2_560, 256, reward)
        ref = _playouts(problem, "reference", 2_560 if not quick else 256, 256, reward)
        rows.append({"what": f"playouts/s, {name}, torch callback (256 paths per call)", "fused": cpp,
                     "baseline": ref, "ratio": cpp / ref, "baseline_is": "Python oracle, same callback"})
    leftmost = synthetic.Leftmost(8, 10, seed=0)
    rates = {b: _rate(lambda b=b: nested_search(leftmost, 1, backend=b), 80, 1.0) for b in ("cpp", "reference")}
    rows.append({"what": "playouts/s, level-1 NMCS, leftmost D8K10", "fused": rates["cpp"],
                 "baseline": rates["reference"], "ratio": rates["cpp"] / rates["reference"],
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
    rows = tree_rows(False) + sbn_rows(dev, quick, repeats) + supernet_rows(dev, quick, repeats)
    for r in rows:
        r.update(device=str(dev), quick=quick, note=NOTE if dev.type == "cpu" else "")
    print(table(rows, ["what", "fused", "baseline", "ratio", "baseline_is"]))
    print(f"appended to {save(rows, dev, 'nas', results)}")
    return rows
