"""Python oracle of the C++ NMCS/CMAB core (csrc/cpu/nmcs.cpp): the same tree, step for step.

A problem is D choices, K_d arms at depth d. The tree's node 0 is the root; a node at depth d + 1 holds the
statistics (visits, pending, total) of the arm chosen at depth d below its parent.

- sample(prefix, n): from the root along `prefix`, then at each depth a uniformly random untried arm (the r-th
  untried in ascending order, r from SplitMix64) or, once every arm is tried, the UCB arm
  argmax_j total_j/n_j + α·sqrt(2 ln n_i)·(1/sqrt(n_j)) with n = visits + pending (ties to the lowest arm); every node
  crossed gets one pending visit.
- update(paths, rewards): every node of each path: visits += 1, total += share·R, pending −= 1 (not below 0).
- policy(prefix, rank): the visited child of rank `rank` by mean reward (ties to the lowest arm); rank < 0: a
  uniformly random arm.
- nested(problem, level): Cazenave's NMCS, memorising the best sequence so far.

The RNG is SplitMix64 with uniform integers ⌊(z >> 11)·2⁻⁵³·k⌋, so that C++ and Python draw the same numbers.
"""
from __future__ import annotations

import bisect
import math

MASK = (1 << 64) - 1
NOISE_SALT = 0x5DEECE66D


class SplitMix64:
    def __init__(self, seed: int):
        self.state = seed & MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return (self.next() >> 11) * 2.0 ** -53

    def below(self, k: int) -> int:
        return int((self.next() >> 11) * 2.0 ** -53 * k)

    def normal(self) -> float:
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


class Tree:
    def __init__(self, arm_counts, alpha: float, share: float, seed: int):
        self.arms = [int(k) for k in arm_counts]
        self.D = len(self.arms)
        self.alpha = float(alpha)
        self.share = float(share)
        self.rng = SplitMix64(seed)
        self.reset()

    def reset(self) -> None:
        self.visits, self.pending, self.total, self.parent, self.arm = [0], [0], [0.0], [-1], [-1]
        self.child_arms: list[list[int]] = [[]]
        self.child_nodes: list[list[int]] = [[]]

    def reseed(self, seed: int) -> None:
        self.rng = SplitMix64(seed)

    def set_alpha(self, alpha: float) -> None:
        self.alpha = float(alpha)

    def _child(self, node: int, a: int, create: bool = True) -> int:
        arms = self.child_arms[node]
        pos = bisect.bisect_left(arms, a)
        if pos < len(arms) and arms[pos] == a:
            return self.child_nodes[node][pos]
        if not create:
            return -1
        new = len(self.visits)
        self.visits.append(0)
        self.pending.append(0)
        self.total.append(0.0)
        self.parent.append(node)
        self.arm.append(a)
        self.child_arms.append([])
        self.child_nodes.append([])
        arms.insert(pos, a)
        self.child_nodes[node].insert(pos, new)
        return new

    def _find(self, prefix) -> int:
        node = 0
        for a in prefix:
            node = self._child(node, a, create=False)
            if node < 0:
                return -1
        return node

    def _select(self, node: int, d: int) -> int:
        k = self.arms[d]
        tried = self.child_arms[node]
        if len(tried) < k:
            a = self.rng.below(k - len(tried))
            for t in tried:
                if t <= a:
                    a += 1
                else:
                    break
            return a
        coef = self.alpha * math.sqrt(2.0 * math.log(self.visits[node] + self.pending[node]))
        best, arm = -math.inf, tried[0]
        for a, c in zip(tried, self.child_nodes[node], strict=True):
            nj = float(self.visits[c] + self.pending[c])
            v = self.total[c] / nj + coef * (1.0 / math.sqrt(nj))
            if v > best:
                best, arm = v, a
        return arm

    def sample(self, prefix, n: int) -> list[list[int]]:
        out = []
        for _ in range(n):
            node = 0
            self.pending[0] += 1
            path = []
            for d in range(self.D):
                a = prefix[d] if d < len(prefix) else self._select(node, d)
                node = self._child(node, a)
                self.pending[node] += 1
                path.append(a)
            out.append(path)
        return out

    def _backup(self, node: int, r: float) -> None:
        self.visits[node] += 1
        self.total[node] += r
        if self.pending[node] > 0:
            self.pending[node] -= 1

    def update(self, paths, rewards) -> None:
        for path, reward in zip(paths, rewards, strict=True):
            r = self.share * reward
            node = 0
            self._backup(node, r)
            for a in path:
                node = self._child(node, a)
                self._backup(node, r)

    def policy(self, prefix, rank: int) -> int:
        k = self.arms[len(prefix)]
        if rank < 0:
            return self.rng.below(k)
        node = self._find(prefix)
        ranked = []
        if node >= 0:
            for a, c in zip(self.child_arms[node], self.child_nodes[node], strict=True):
                if self.visits[c] > 0:
                    ranked.append((-(self.total[c] / self.visits[c]), a))
        if rank >= len(ranked):
            raise ValueError(f"rank {rank} asked but the node has only {len(ranked)} visited arms")
        return sorted(ranked)[rank][1]

    def child_stats(self, prefix) -> list[list[float]]:
        node = self._find(prefix)
        out = [[], [], [], []]
        if node < 0:
            return out
        for a, c in zip(self.child_arms[node], self.child_nodes[node], strict=True):
            out[0].append(float(a))
            out[1].append(float(self.visits[c]))
            out[2].append(float(self.pending[c]))
            out[3].append(self.total[c])
        return out

    def simulate(self, problem, prefix, L: int, batch: int) -> tuple[float, list[int]]:
        best, best_path = -math.inf, [0] * self.D
        done = 0
        while done < L:
            n = min(batch, L - done)
            paths = self.sample(prefix, n)
            rewards = problem(paths)
            self.update(paths, rewards)
            for p, r in zip(paths, rewards, strict=True):
                if r > best:
                    best, best_path = r, p
            done += n
        return best, best_path

    def search_best(self, problem, L: int, rank: int, from_root: bool, batch: int) -> list[int]:
        prefix: list[int] = []
        for _ in range(self.D):
            self.simulate(problem, [] if from_root else prefix, L, batch)
            prefix.append(self.policy(prefix, rank))
        return prefix

    def nested(self, problem, level: int, prefix=()) -> tuple[float, list[int]]:
        prefix = list(prefix)
        if level == 0 or len(prefix) == self.D:
            path = prefix + [self.rng.below(self.arms[d]) for d in range(len(prefix), self.D)]
            return problem([path])[0], path
        best, best_path = -math.inf, None
        while len(prefix) < self.D:
            d = len(prefix)
            if level == 1:
                paths = [prefix + [m] + [self.rng.below(self.arms[e]) for e in range(d + 1, self.D)]
                         for m in range(self.arms[d])]
                results = list(zip(problem(paths), paths, strict=True))
            else:
                results = [self.nested(problem, level - 1, [*prefix, m]) for m in range(self.arms[d])]
            for s, p in results:
                if s > best:
                    best, best_path = s, p
            prefix.append(best_path[d])
        return best, best_path

    def arrays(self) -> list[list[float]]:
        return [[float(v) for v in a] for a in (self.visits, self.pending, self.total, self.parent, self.arm)]


# Synthetic problems, as plain functions of lists of paths (the C++ core builds the same from these numbers).

def separable_weights(arm_counts, seed: int, hi: float) -> tuple[list[float], list[int]]:
    """w[d][a] ~ U(0, hi) flattened depth by depth, and the planted arm of each depth, whose weight is 1."""
    rng = SplitMix64(seed)
    weights, planted, offset = [], [], 0
    for k in arm_counts:
        weights += [rng.uniform() * hi for _ in range(k)]
        p = rng.below(k)
        weights[offset + p] = 1.0
        planted.append(p)
        offset += k
    return weights, planted


class SeparableScores:
    """reward = mean_d w[d][a_d] + σ·N(0, 1), the noise from SplitMix64(seed ^ NOISE_SALT)."""

    def __init__(self, arm_counts, weights, sigma: float, seed: int):
        self.offsets = [sum(arm_counts[:d]) for d in range(len(arm_counts))]
        self.weights, self.sigma, self.noise = weights, sigma, SplitMix64(seed ^ NOISE_SALT)

    def __call__(self, paths) -> list[float]:
        out = []
        for p in paths:
            s = 0.0
            for d, a in enumerate(p):
                s += self.weights[self.offsets[d] + a]
            r = s / len(p)
            if self.sigma > 0:
                r += self.sigma * self.noise.normal()
            out.append(r)
        return out


def prefix_targets(depth: int, k: int, seed: int) -> tuple[list[int], int]:
    """The target path and a trap first move different from the target's."""
    rng = SplitMix64(seed)
    target = [rng.below(k) for _ in range(depth)]
    trap = (target[0] + 1 + rng.below(k - 1)) % k if k > 1 else -1
    return target, trap


class PrefixScores:
    """Correct-prefix length / D; with trap ≥ 0, a path starting with the trap move scores 0.5."""

    def __init__(self, target, trap: int = -1):
        self.target, self.trap = list(target), trap

    def __call__(self, paths) -> list[float]:
        out = []
        for p in paths:
            if self.trap >= 0 and p[0] == self.trap:
                out.append(0.5)
                continue
            k = 0
            while k < len(p) and p[k] == self.target[k]:
                k += 1
            out.append(k / len(p))
        return out
