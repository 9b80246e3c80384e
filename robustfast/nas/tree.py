"""NMCSTree: the CMAB tree over per-depth arm counts, run by the C++ core (`backend="cpp"`) or by the Python
oracle robustfast.reference.nmcs (`backend="reference"`); both give the same trees and paths on the same seed.

A problem is a callable on an (n, D) LongTensor of paths returning n finite rewards (a tensor), or one of the
robustfast.nas.synthetic problems, which the C++ core scores in C++ without calling back into Python.
"""
from __future__ import annotations

import math

import torch

from robustfast import _backend
from robustfast._util.checks import is_int, is_real, require
from robustfast.reference import nmcs as oracle

POLICIES = {"local_optimal": 0, "local_suboptimal": 1, "local_random": -1}
REWARD_SHARES = ("per_arm", "full")
BACKENDS = ("cpp", "reference")


def check_counts(arm_counts) -> list[int]:
    counts = list(arm_counts) if isinstance(arm_counts, (list, tuple)) else None
    if not counts or not all(is_int(k) and k >= 1 for k in counts):
        raise ValueError(f"arm_counts must be a non-empty list of ints >= 1, got {arm_counts!r}")
    return [int(k) for k in counts]


def policy_rank(policy) -> int:
    """local_optimal → 0, local_suboptimal → 1, local_random → −1, or an int rank ≥ 0."""
    if is_int(policy) and policy >= 0:
        return int(policy)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {tuple(POLICIES)} or an int rank >= 0, got {policy!r}")
    return POLICIES[policy]


def _check_rewards(rewards, n: int) -> list[float]:
    if not isinstance(rewards, torch.Tensor) or rewards.shape != (n,):
        got = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"callback must return a float tensor of shape ({n},), got {got}")
    values = rewards.detach().double().cpu().tolist()
    if not all(math.isfinite(v) for v in values):
        raise ValueError("callback returned a non-finite reward (NaN or inf)")
    return values


class NMCSTree:
    def __init__(self, arm_counts, *, alpha: float = 1.0, reward_share: str = "per_arm", seed: int = 0,
                 backend: str = "cpp"):
        self.arm_counts = check_counts(arm_counts)
        require("alpha", alpha, is_real(alpha) and alpha >= 0, "a finite number >= 0")
        require("reward_share", reward_share, reward_share in REWARD_SHARES, f"one of {REWARD_SHARES}")
        require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
        require("backend", backend, backend in BACKENDS, f"one of {BACKENDS}")
        share = 1.0 / len(self.arm_counts) if reward_share == "per_arm" else 1.0
        if backend == "cpp":
            ext = _backend.extension()
            if ext is None or not hasattr(ext, "nmcs"):
                raise RuntimeError(f"the C++ NMCS core is not built ({_backend.extension_error() or 'stale _C'}); "
                                   "rebuild with `pip install --no-build-isolation -e .` or use backend='reference'")
            self._tree = ext.nmcs.Tree(self.arm_counts, float(alpha), share, int(seed))
        else:
            self._tree = oracle.Tree(self.arm_counts, float(alpha), share, int(seed))
        self.backend, self.depth = backend, len(self.arm_counts)

    # -- problems ----------------------------------------------------------------------------------------------

    def _problem(self, problem):
        """What the backend calls: a core problem (C++) or a list-of-paths → list-of-floats function (oracle)."""
        counts = getattr(problem, "arm_counts", None)
        if counts is not None and list(counts) != self.arm_counts:
            raise ValueError(f"problem's arm_counts {list(counts)} differ from the tree's {self.arm_counts}")
        if not callable(problem):
            raise ValueError(f"problem must be callable on an (n, D) LongTensor of paths, got {type(problem).__name__}")
        if self.backend == "reference":
            if hasattr(problem, "scores"):
                return problem.scores
            return lambda paths: _check_rewards(problem(torch.tensor(paths, dtype=torch.long)), len(paths))
        if hasattr(problem, "core"):
            return problem.core()
        return _backend.extension().nmcs.callback(self.arm_counts, problem)

    # -- the tree ----------------------------------------------------------------------------------------------

    def _prefix(self, prefix, name="prefix") -> list[int]:
        prefix = [int(a) for a in (prefix.tolist() if isinstance(prefix, torch.Tensor) else prefix)]
        if len(prefix) > self.depth:
            raise ValueError(f"{name} has length {len(prefix)}, the tree has depth {self.depth}")
        for d, a in enumerate(prefix):
            if not 0 <= a < self.arm_counts[d]:
                raise ValueError(f"{name}[{d}] = {a} is out of range [0, {self.arm_counts[d]})")
        return prefix

    def reset(self) -> None:
        self._tree.reset()

    def reseed(self, seed: int) -> None:
        self._tree.reseed(int(seed))

    def set_alpha(self, alpha: float) -> None:
        require("alpha", alpha, is_real(alpha) and alpha >= 0, "a finite number >= 0")
        self._tree.set_alpha(float(alpha))

    def sample(self, prefix=(), n: int = 1) -> torch.Tensor:
        """n complete paths (n, D) from the node of `prefix`; with n > 1 the earlier ones count as pending visits."""
        require("n", n, is_int(n) and n >= 1, "an int >= 1")
        out = self._tree.sample(self._prefix(prefix), int(n))
        return out if isinstance(out, torch.Tensor) else torch.tensor(out, dtype=torch.long).view(-1, self.depth)

    def update(self, paths: torch.Tensor, rewards: torch.Tensor) -> None:
        if not isinstance(paths, torch.Tensor) or paths.dim() != 2 or paths.shape[1] != self.depth:
            raise ValueError(f"paths must be an (n, {self.depth}) integer tensor")
        n = paths.shape[0]
        if not isinstance(rewards, torch.Tensor) or rewards.shape != (n,):
            raise ValueError(f"rewards must be a tensor of shape ({n},)")
        rows = paths.tolist()
        for i, row in enumerate(rows):
            self._prefix(row, f"paths[{i}]")
        values = rewards.detach().double().cpu()
        if not torch.isfinite(values).all():
            raise ValueError("rewards must be finite")
        if self.backend == "cpp":
            self._tree.update(paths, values)
        else:
            self._tree.update(rows, values.tolist())

    def policy(self, prefix=(), policy="local_optimal") -> int:
        prefix = self._prefix(prefix)
        if len(prefix) == self.depth:
            raise ValueError("prefix is a complete path: there is no arm left to pick")
        return int(self._tree.policy(prefix, policy_rank(policy)))

    def child_stats(self, prefix=()) -> dict[str, torch.Tensor]:
        """The visited children of the node of `prefix`: arm, visits, pending, total (sorted by arm)."""
        arms, visits, pending, total = self._tree.child_stats(self._prefix(prefix))
        return {"arm": torch.tensor(arms, dtype=torch.long), "visits": torch.tensor(visits, dtype=torch.long),
                "pending": torch.tensor(pending, dtype=torch.long), "total": torch.tensor(total, dtype=torch.float64)}

    def arrays(self) -> dict[str, torch.Tensor]:
        """Every node in creation order: visits, pending, total, parent, arm (for parity tests)."""
        names = ("visits", "pending", "total", "parent", "arm")
        return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in zip(names, self._tree.arrays(), strict=True)}

    # -- searches ----------------------------------------------------------------------------------------------

    def simulate(self, problem, prefix=(), L: int = 8, batch: int = 1) -> tuple[float, list[int]]:
        """L playouts from the node of `prefix`, `batch` paths per problem call; the best (reward, path)."""
        require("L", L, is_int(L) and L >= 1, "an int >= 1")
        require("batch", batch, is_int(batch) and batch >= 1, "an int >= 1")
        best, path = self._tree.simulate(self._problem(problem), self._prefix(prefix), int(L), int(batch))
        return float(best), list(path)

    def search_best(self, problem, L: int = 800, policy="local_optimal", from_root: bool = False,
                    batch: int = 1) -> list[int]:
        """SearchBest: at each depth L playouts from the committed prefix (or the root), then commit by `policy`."""
        require("L", L, is_int(L) and L >= 1, "an int >= 1")
        require("batch", batch, is_int(batch) and batch >= 1, "an int >= 1")
        rank = policy_rank(policy)
        return list(self._tree.search_best(self._problem(problem), int(L), rank, bool(from_root), int(batch)))

    def nested(self, problem, level: int = 1, prefix=()) -> tuple[float, list[int]]:
        require("level", level, is_int(level) and level >= 0, "an int >= 0")
        score, path = self._tree.nested(self._problem(problem), int(level), self._prefix(prefix))
        return float(score), list(path)


def nested_search(problem, level: int, *, seed: int = 0, backend: str = "cpp") -> tuple[float, list[int]]:
    """Classic level-`level` NMCS (Cazenave 2009) on `problem` (which carries `arm_counts`): (score, path)."""
    counts = getattr(problem, "arm_counts", None)
    if counts is None:
        raise ValueError("problem must carry arm_counts (a robustfast.nas.synthetic problem or an object with "
                         "arm_counts and __call__)")
    return NMCSTree(counts, seed=seed, backend=backend).nested(problem, level)
