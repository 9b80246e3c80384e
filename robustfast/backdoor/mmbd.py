"""MMBD, maximum-margin backdoor detection (specs/ebyd.md §3): per class k, `images` U[0,1] inputs are optimised to
maximise the margin z_k − max_{j≠k} z_j; r_k is the largest margin reached. A Gamma fitted (scipy) to the C − 1
non-maximal r's gives p = 1 − F(r_max)^C; the model is flagged iff p ≤ alpha.

All classes' images run as one batch (C·images inputs per step, model in eval mode), each image with its own
margin, so the result equals per-class runs with the same seed (`classes=[k]`). The reference rebuilds its
optimizer every step, so its momentum never acts: the default is plain SGD (momentum=0.0); momentum=0.2 is the
written-down setting.
"""
from __future__ import annotations

import dataclasses

import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from robustfast._util.checks import is_int, is_real, require
from robustfast._util.frozen import frozen_eval
from robustfast._util.seeds import stream_generator


@dataclasses.dataclass
class MMBDResult:
    margins: torch.Tensor  # r_k per class, (C,)
    p_value: float
    backdoored: bool
    label: int             # argmax r: the suspected target


def max_margins(model: nn.Module, shape, *, classes, images: int = 30, steps: int = 3000, lr: float = 0.01,
                momentum: float = 0.0, seed: int = 0) -> torch.Tensor:
    """r_k for each class of `classes`: the largest margin over `images` optimised inputs of `shape` (C, H, W)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    x = torch.cat([torch.rand(images, *shape, generator=stream_generator(seed, 31, k)) for k in classes])
    x = x.to(device, dtype).requires_grad_(True)
    target = torch.tensor(classes, device=device).repeat_interleave(images)
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum)
    with frozen_eval(model):
        for _ in tqdm(range(steps), desc="mmbd", disable=True):
            margin = _margin(model(x), target)
            opt.zero_grad(set_to_none=True)
            (-margin.sum()).backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        with torch.no_grad():
            margin = _margin(model(x), target)
    return margin.view(len(classes), images).amax(1).double().cpu()


def _margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    own = logits.gather(1, target[:, None]).squeeze(1)
    others = logits.scatter(1, target[:, None], float("-inf")).amax(1)
    return own - others


def mmbd(model: nn.Module, shape=(3, 32, 32), *, images: int = 30, steps: int = 3000, lr: float = 0.01,
         momentum: float = 0.0, alpha: float = 0.05, seed: int = 0) -> MMBDResult:
    """Detect a backdoor in an image classifier taking N×shape inputs in [0, 1]. The inputs stay in [0, 1]
    (clamped after each step)."""
    require("shape", shape, isinstance(shape, (tuple, list)) and len(shape) == 3
            and all(is_int(s) and s >= 1 for s in shape), "(C, H, W) of positive ints")
    require("images", images, is_int(images) and images >= 1, "an int >= 1")
    require("steps", steps, is_int(steps) and steps >= 0, "an int >= 0")
    require("lr", lr, is_real(lr) and lr > 0, "a finite number > 0")
    require("momentum", momentum, is_real(momentum) and momentum >= 0, "a finite number >= 0")
    require("alpha", alpha, is_real(alpha) and 0 < alpha < 1, "a number in (0, 1)")
    require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
    with torch.no_grad(), frozen_eval(model):
        num_classes = model(torch.zeros(1, *shape, device=next(model.parameters()).device)).shape[-1]
    r = max_margins(model, tuple(shape), classes=list(range(num_classes)), images=images, steps=steps, lr=lr,
                    momentum=momentum, seed=seed)
    top = int(r.argmax())
    null = torch.cat([r[:top], r[top + 1:]]).numpy()
    a, loc, scale = stats.gamma.fit(null)
    p = 1.0 - stats.gamma.cdf(r[top].item(), a, loc=loc, scale=scale) ** num_classes
    return MMBDResult(r, float(p), bool(p <= alpha), top)
