"""The final network of a searched genotype and its training (the DARTS recipe, scaled down: SGD with cosine lr,
cutout and drop-path as options) on the toolkit's training loop."""
from __future__ import annotations

import torch
from torch import nn

from robustfast._util.checks import is_int, is_real, require
from robustfast.nas.space import Genotype, SearchSpace
from robustfast.nas.supernet import FactorizedReduce, Identity, ReLUConvBN, cell_plan, make_op
from robustfast.training import evaluate, train_classifier


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    if p <= 0:
        return x
    keep = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(1 - p)
    return x * keep / (1 - p)


class FixedCell(nn.Module):
    def __init__(self, pairs, ops, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c, True) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, True)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, True)
        self.pairs = [tuple(pair) for pair in pairs]
        self.layers = nn.ModuleList()
        for pair in self.pairs:
            picks = pair[:1] if pair[0] == pair[1] else pair
            self.layers.append(nn.ModuleList(make_op(op, c, 2 if reduction and j < 2 else 1, fixed=True)
                                             for j, op in picks))

    def forward(self, s0, s1, drop_prob: float):
        states = [self.pre0(s0, 0), self.pre1(s1, 0)]
        for pair, modules in zip(self.pairs, self.layers, strict=True):
            total = 0
            for (j, _), module in zip(pair, modules, strict=False):
                h = module(states[j], 0)
                if self.training and not isinstance(module, Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(2 * total if len(modules) == 1 else total)
        return torch.cat(states[2:], dim=1)


class Network(nn.Module):
    """`layers` cells of `genotype` (reductions at layers//3 and 2·layers//3), C channels at the first stage."""

    def __init__(self, genotype: Genotype, space: SearchSpace, C: int = 16, layers: int = 6, num_classes: int = 10,
                 in_channels: int = 3, drop_path_prob: float = 0.0):
        super().__init__()
        space.check(genotype)
        require("layers", layers, is_int(layers) and layers >= 1, "an int >= 1")
        require("drop_path_prob", drop_path_prob, is_real(drop_path_prob) and 0 <= drop_path_prob < 1,
                "a number in [0, 1)")
        self.drop_path_prob = float(drop_path_prob)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        plan = cell_plan(layers, C, space.nodes)
        self.cells = nn.ModuleList(
            FixedCell(genotype.cells["reduce" if reduction and "reduce" in space.cells else "normal"], space.ops,
                      c_pp, c_p, c, reduction, reduction_prev)
            for reduction, reduction_prev, c_pp, c_p, c in plan)
        self.classifier = nn.Linear(space.nodes * plan[-1][4], num_classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return self.classifier(s1.mean(dim=(2, 3)))


def cutout(length: int, seed: int = 0):
    """An augment(x) that zeroes one random length×length square per image (DARTS uses 16 on CIFAR-10)."""
    require("cutout", length, is_int(length) and length >= 0, "an int >= 0 (0: off)")

    def apply(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cy = torch.randint(h, (n, 1, 1), device=x.device)
        cx = torch.randint(w, (n, 1, 1), device=x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        hole = ((ys - cy).abs() <= length // 2) & ((xs - cx).abs() <= length // 2)
        return x * (~hole).unsqueeze(1).to(x.dtype)

    return apply


def train_genotype(genotype: Genotype, space: SearchSpace, train_set, test_set=None, *, C: int = 16, layers: int = 6,
                   epochs: int = 15, batch_size: int = 96, lr: float = 0.025, weight_decay: float = 3e-4,
                   cutout_length: int = 0, drop_path_prob: float = 0.0, seed: int = 0, device=None,
                   checkpoint_dir=None, progress: bool = True) -> tuple[Network, dict]:
    """Train the final network of `genotype` from scratch (SGD momentum 0.9, cosine lr; cutout and drop-path as
    options); returns the model and {"params", "history", "test_acc"} (test_acc only with a test_set)."""
    x, _ = train_set.tensors
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Network(genotype, space, C=C, layers=layers, num_classes=10, in_channels=x.shape[1],
                        drop_path_prob=drop_path_prob)
    history = train_classifier(model, train_set, epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               augment=cutout(cutout_length, seed) if cutout_length else None, seed=seed,
                               device=device, checkpoint_dir=checkpoint_dir, progress=progress)
    out = {"params": count_params(model), "history": history}
    if test_set is not None:
        out["test_acc"] = evaluate(model, test_set, device=device)
    return model, out


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
