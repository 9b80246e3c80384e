"""Synthetic bandit problems with a known optimum, for testing and benchmarking the NMCS core.

Each is a callable on an (n, D) LongTensor of paths returning (n,) float64 rewards, and carries `core()`, the same
problem built inside the C++ core (no Python callback). The numbers come from robustfast.reference.nmcs, so the
oracle and the core score alike.
"""
from __future__ import annotations

import torch

from robustfast import _backend
from robustfast.reference import nmcs as oracle


def _check_counts(arm_counts) -> list[int]:
    counts = list(arm_counts)
    if not counts or not all(isinstance(k, int) and k >= 1 for k in counts):
        raise ValueError(f"arm_counts must be a non-empty list of ints >= 1, got {arm_counts!r}")
    return counts


class _Problem:
    arm_counts: list[int]
    optimum: float = 1.0

    def __call__(self, paths: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.scores(paths.tolist()), dtype=torch.float64)

    def core(self):
        """The same problem inside the C++ core (made once: its noise stream continues across calls)."""
        if getattr(self, "_in_core", None) is None:
            ext = _backend.extension()
            if ext is None:
                raise RuntimeError(f"robustfast._C is not built: {_backend.extension_error()}")
            self._in_core = self._core(ext.nmcs)
        return self._in_core


class Separable(_Problem):
    """reward = mean_d w[d][a_d] + N(0, σ²), w[d][a] ~ U(0, hi) except one planted arm per depth with w = 1."""

    def __init__(self, arm_counts, seed: int = 0, sigma: float = 0.02, hi: float = 0.7):
        self.arm_counts = _check_counts(arm_counts)
        if not 0 <= hi < 1:
            raise ValueError(f"hi must be in [0, 1) so that the planted arm is the optimum, got {hi}")
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.seed, self.sigma = int(seed), float(sigma)
        self.weights, self.planted = oracle.separable_weights(self.arm_counts, self.seed, float(hi))
        self.scores = oracle.SeparableScores(self.arm_counts, self.weights, self.sigma, self.seed)

    def value(self, path) -> float:
        """The noiseless reward of `path`."""
        return oracle.SeparableScores(self.arm_counts, self.weights, 0.0, 0)([list(path)])[0]

    def _core(self, nmcs):
        return nmcs.separable(self.arm_counts, self.weights, self.sigma, self.seed)


class Leftmost(_Problem):
    """Correct-prefix length / D against a seeded target path (Cazenave's leftmost path, shuffled)."""

    def __init__(self, D: int = 8, K: int = 10, seed: int = 0):
        self.arm_counts = _check_counts([K] * D if isinstance(D, int) and D >= 1 else [])
        self.target, _ = oracle.prefix_targets(D, K, int(seed))
        self.trap = -1
        self.scores = oracle.PrefixScores(self.target, self.trap)

    def _core(self, nmcs):
        return nmcs.prefix(self.arm_counts, self.target, self.trap)


class Trap(Leftmost):
    """Leftmost, except that one wrong first move (the trap) scores 0.5 whatever follows."""

    def __init__(self, D: int = 8, K: int = 10, seed: int = 0):
        super().__init__(D, K, seed)
        if K < 2:
            raise ValueError(f"K must be >= 2 for a trap move, got {K}")
        self.target, self.trap = oracle.prefix_targets(D, K, int(seed))
        self.scores = oracle.PrefixScores(self.target, self.trap)
