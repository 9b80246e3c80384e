"""The weight-sharing supernet: one module per (cell, edge, op), created once; a child routes through its picks.

Every batch norm is `segmented_batch_norm` without affine parameters and without running statistics: a child is
normalised by its own batch, and `forward_children` runs P children × b images as one batch (segments of b).
Per cell and node it groups the children's picks by (input, op) and runs each module once per group: gather the
children's rows of that input, the op, scatter-add into the node (≤ 14 edges × 7 ops launches per cell, not P·8).
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from robustfast.nas.space import Genotype, SearchSpace
from robustfast.ops import segmented_batch_norm


class Norm(nn.Module):
    """Per-segment batch statistics, no affine (the supernet); `fixed`: an ordinary BatchNorm2d (a final net)."""

    def __init__(self, c: int, fixed: bool = False):
        super().__init__()
        self.bn = nn.BatchNorm2d(c) if fixed else None

    def forward(self, x, segment: int):
        return segmented_batch_norm(x, segment) if self.bn is None else self.bn(x)


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding, fixed=False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
        self.norm = Norm(c_out, fixed)

    def forward(self, x, segment):
        return self.norm(self.conv(F.relu(x)), segment)


class DilConv(nn.Module):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, fixed=False):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False)
        self.pointwise = ReLUConvBN(c_in, c_out, 1, 1, 0, fixed)

    def forward(self, x, segment):
        y = self.pointwise.conv(self.depthwise(F.relu(x)))
        return self.pointwise.norm(y, segment)


class SepConv(nn.Module):
    """Two DilConv(dilation 1), the first with the stride (DARTS)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, fixed=False):
        super().__init__()
        self.first = DilConv(c_in, c_in, kernel, stride, padding, 1, fixed)
        self.second = DilConv(c_in, c_out, kernel, 1, padding, 1, fixed)

    def forward(self, x, segment):
        return self.second(self.first(x, segment), segment)


class Pool(nn.Module):
    def __init__(self, kind, stride, c, fixed=False):
        super().__init__()
        self.kind, self.stride = kind, stride
        self.norm = Norm(c, fixed)

    def forward(self, x, segment):
        if self.kind == "max":
            y = F.max_pool2d(x, 3, self.stride, 1)
        else:
            y = F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)
        return self.norm(y, segment)


class Identity(nn.Module):
    def forward(self, x, segment):
        return x


class FactorizedReduce(nn.Module):
    def __init__(self, c_in, c_out, fixed=False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, 2, 0, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, 2, 0, bias=False)
        self.norm = Norm(c_out, fixed)

    def forward(self, x, segment):
        x = F.relu(x)
        y = torch.cat([self.conv1(x), self.conv2(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)))], dim=1)
        return self.norm(y, segment)


def make_op(name: str, c: int, stride: int, fixed: bool = False) -> nn.Module:
    """A DARTS op on c channels; `fixed` (a final net) uses BatchNorm2d with affine parameters."""
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c, fixed)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], stride, c, fixed)
    kernel = int(name[-1])
    if name.startswith("sep_conv"):
        return SepConv(c, c, kernel, stride, kernel // 2, fixed)
    return DilConv(c, c, kernel, stride, kernel - 1, 2, fixed)


def cell_plan(layers: int, C: int, nodes: int) -> list[tuple[bool, bool, int, int, int]]:
    """(reduction, reduction_prev, c_pp, c_p, c) of each of `layers` cells after a 3·C-channel stem: reductions at
    layers//3 and 2·layers//3 (when layers >= 3) double c, and a cell outputs its `nodes` nodes concatenated."""
    plan, c_pp, c_p, c, reduction_prev = [], 3 * C, 3 * C, C, False
    for k in range(layers):
        reduction = layers >= 3 and k in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        plan.append((reduction, reduction_prev, c_pp, c_p, c))
        reduction_prev = reduction
        c_pp, c_p = c_p, nodes * c
    return plan


class Cell(nn.Module):
    def __init__(self, space: SearchSpace, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.reduction, self.nodes = reduction, space.nodes
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.ops = space.ops
        self.edges = nn.ModuleDict()
        for i in range(space.nodes):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges[f"{i}_{j}"] = nn.ModuleList(make_op(op, c, stride) for op in space.ops)

    def forward(self, s0, s1, children: list[tuple[tuple[tuple[int, str], tuple[int, str]], ...]], b: int):
        """s0, s1: (P·b, C, H, W) for the P children (rows p·b .. p·b + b − 1 belong to child p)."""
        p_count = len(children)
        states = [self.pre0(s0, b), self.pre1(s1, b)]
        for i in range(self.nodes):
            groups: dict[tuple[int, str], list[tuple[int, float]]] = defaultdict(list)
            for child, nodes in enumerate(children):
                a, c = nodes[i]
                if a == c:
                    groups[a].append((child, 2.0))
                else:
                    groups[a].append((child, 1.0))
                    groups[c].append((child, 1.0))
            out = None
            for (j, op), members in groups.items():
                module = self.edges[f"{i}_{j}"][self.ops.index(op)]
                src = states[j]
                if len(members) == p_count and all(w == 1.0 for _, w in members):
                    y = module(src, b)  # every child takes this pick once: no gather
                    out = y if out is None else out + y
                    continue
                idx = torch.tensor([m for m, _ in members], device=src.device)
                picked = src.view(p_count, b, *src.shape[1:]).index_select(0, idx).flatten(0, 1)
                y = module(picked, b)
                y = y.view(len(members), b, *y.shape[1:])
                if any(w != 1.0 for _, w in members):
                    y = y * torch.tensor([w for _, w in members], device=y.device, dtype=y.dtype).view(-1, 1, 1, 1, 1)
                if out is None:
                    out = y.new_zeros((p_count * b, *y.shape[2:]))
                out = out.view(p_count, b, *y.shape[2:]).index_add(0, idx, y).flatten(0, 1)
            states.append(out)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """DARTS-style proxy network over `space`: a 3×3 stem to 3·C channels, `layers` cells (reductions at
    layers//3 and 2·layers//3, doubling C), global pooling and a linear classifier."""

    def __init__(self, space: SearchSpace, C: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        for name, v, low in (("C", C, 2), ("layers", layers, 1), ("num_classes", num_classes, 2),
                             ("in_channels", in_channels, 1)):
            if not (isinstance(v, int) and v >= low):
                raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
        if "reduce" not in space.cells and layers >= 3:
            raise ValueError("space has no 'reduce' cell but layers >= 3 places reduction cells")
        self.space = space
        self.stem = nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False)
        self.stem_norm = Norm(3 * C)
        plan = cell_plan(layers, C, space.nodes)
        self.cells = nn.ModuleList(Cell(space, c_pp, c_p, c, reduction, reduction_prev)
                                   for reduction, reduction_prev, c_pp, c_p, c in plan)
        self.classifier = nn.Linear(space.nodes * plan[-1][4], num_classes)

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        """Logits (b, classes) of one child."""
        return self.forward_children(x, [genotype])[0]

    def forward_children(self, x: torch.Tensor, genotypes: list[Genotype]) -> torch.Tensor:
        """Logits (P, b, classes) of P children on the same b images, in one batched pass."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise ValueError(f"x must be a float (b, C, H, W) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not genotypes:
            raise ValueError("genotypes must hold at least one genotype")
        for g in genotypes:
            self.space.check(g)
        p_count, b = len(genotypes), x.shape[0]
        s = self.stem_norm(self.stem(x), b)
        s = s.unsqueeze(0).expand(p_count, *s.shape).flatten(0, 1)
        s0 = s1 = s
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, [g.cells[kind] for g in genotypes], b)
        logits = self.classifier(s1.mean(dim=(2, 3)))
        return logits.view(p_count, b, -1)
