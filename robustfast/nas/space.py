"""The CMAB-NAS search space: a DARTS cell without `zero`, whose every node is a local bandit.

Node i (1-based, of `nodes`) sums two (input, op) picks; its inputs are C_{k−2} (0), C_{k−1} (1) and the nodes
before it (2..i). A pick is the id p = input·M + op < K_i = (i + 1)·M, and an arm is an unordered pair {p, q},
p ≤ q, identical pairs allowed (computed once, doubled): C(K_i, 2) + K_i arms, canonical index q(q+1)/2 + p.
With M = 7 that is 105, 231, 406, 630 arms per node. A path is one arm per node, the normal cell's nodes first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from robustfast._util.atomic import write_json
from robustfast._util.checks import read_json

DARTS_OPS = ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5", "max_pool_3x3",
             "avg_pool_3x3")
CELLS = ("normal", "reduce")

Pick = tuple[int, str]  # (input, op name)


@dataclass(frozen=True)
class Genotype:
    """Per cell kind, one pair of picks per node: cells["normal"][i] = ((input, op), (input, op))."""
    cells: dict[str, tuple[tuple[Pick, Pick], ...]]

    def to_json(self) -> dict:
        return {kind: [[list(p) for p in pair] for pair in nodes] for kind, nodes in self.cells.items()}


class SearchSpace:
    def __init__(self, nodes: int = 4, ops=DARTS_OPS, cells=CELLS):
        if not (isinstance(nodes, int) and nodes >= 1):
            raise ValueError(f"nodes must be an int >= 1, got {nodes!r}")
        ops = tuple(ops)
        if not ops or len(set(ops)) != len(ops) or not set(ops) <= set(DARTS_OPS):
            raise ValueError(f"ops must be distinct names from {DARTS_OPS}, got {ops!r}")
        cells = tuple(cells)
        if not cells or not set(cells) <= set(CELLS) or len(set(cells)) != len(cells):
            raise ValueError(f"cells must be distinct names from {CELLS}, got {cells!r}")
        self.nodes, self.ops, self.cells = nodes, ops, cells

    @property
    def arm_counts(self) -> list[int]:
        per_cell = [(k := (i + 2) * len(self.ops)) * (k + 1) // 2 for i in range(self.nodes)]
        return per_cell * len(self.cells)

    @property
    def size(self) -> int:
        """Architectures in the whole space (the product of the arm counts)."""
        return math.prod(self.arm_counts)

    def _pick(self, p: int) -> Pick:
        return p // len(self.ops), self.ops[p % len(self.ops)]

    def decode(self, path) -> Genotype:
        path = [int(a) for a in (path.tolist() if isinstance(path, torch.Tensor) else path)]
        counts = self.arm_counts
        if len(path) != len(counts):
            raise ValueError(f"path must hold {len(counts)} arms (one per node and cell), got {len(path)}")
        cells = {}
        for c, kind in enumerate(self.cells):
            pairs = []
            for i in range(self.nodes):
                a = path[c * self.nodes + i]
                if not 0 <= a < counts[i]:
                    raise ValueError(f"path[{c * self.nodes + i}] = {a} is out of range [0, {counts[i]})")
                q = int((math.isqrt(8 * a + 1) - 1) // 2)
                p = a - q * (q + 1) // 2
                pairs.append((self._pick(p), self._pick(q)))
            cells[kind] = tuple(pairs)
        return Genotype(cells)

    def encode(self, genotype: Genotype) -> list[int]:
        self.check(genotype)
        path = []
        for kind in self.cells:
            for pair in genotype.cells[kind]:
                p, q = sorted(i * len(self.ops) + self.ops.index(op) for i, op in pair)
                path.append(q * (q + 1) // 2 + p)
        return path

    def check(self, genotype) -> None:
        """ValueError naming what is wrong when `genotype` is not a genotype of this space."""
        if not isinstance(genotype, Genotype):
            raise ValueError(f"genotype must be a robustfast.nas.Genotype, got {type(genotype).__name__}")
        if set(genotype.cells) != set(self.cells):
            raise ValueError(f"genotype must have the cells {self.cells}, got {tuple(genotype.cells)}")
        for kind in self.cells:
            nodes = genotype.cells[kind]
            if len(nodes) != self.nodes:
                raise ValueError(f"genotype[{kind!r}] must have {self.nodes} nodes, got {len(nodes)}")
            for i, pair in enumerate(nodes):
                if len(pair) != 2:
                    raise ValueError(f"genotype[{kind!r}][{i}] must be a pair of (input, op), got {pair!r}")
                for inp, op in pair:
                    if not (isinstance(inp, int) and 0 <= inp <= i + 1):
                        raise ValueError(f"genotype[{kind!r}][{i}]: input {inp!r} must be in [0, {i + 1}]")
                    if op not in self.ops:
                        raise ValueError(f"genotype[{kind!r}][{i}]: op {op!r} is not in {self.ops}")

    def random(self, generator: torch.Generator | None = None) -> Genotype:
        path = [int(torch.randint(k, (1,), generator=generator)) for k in self.arm_counts]
        return self.decode(path)

    def to_json(self) -> dict:
        return {"nodes": self.nodes, "ops": list(self.ops), "cells": list(self.cells)}


def save_genotype(path, genotype: Genotype, space: SearchSpace, **extra) -> Path:
    """Write {"space": ..., "genotype": ..., **extra} as JSON (atomically)."""
    space.check(genotype)
    return write_json(path, {"space": space.to_json(), "genotype": genotype.to_json(), **extra})


def load_genotype(path) -> tuple[Genotype, SearchSpace]:
    data = read_json(path, "genotype JSON")
    try:
        space = SearchSpace(**data["space"])
        cells = {kind: tuple(tuple((int(i), str(op)) for i, op in pair) for pair in nodes)
                 for kind, nodes in data["genotype"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: not a genotype file (keys 'space' and 'genotype' as save_genotype writes): "
                         f"{e}") from None
    genotype = Genotype(cells)
    try:
        space.check(genotype)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return genotype, space

