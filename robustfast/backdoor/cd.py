"""Cognitive Distillation (Huang et al., ICLR 2023; specs/cognitive_distillation.md): for each image, the small,
smooth mask m that keeps a frozen model's output unchanged. Backdoor images need only their trigger, so their
masks are far smaller; ‖m‖₁ is the detection score.

    cd = CognitiveDistillation(model, mode="logits")
    masks = cd(images)           # (N, C_m, H, W) in (0, 1)
    l1 = cd.score(images)        # (N,) ‖m‖₁: small means likely backdoored

Each step runs the op pair robustfast.ops.cd_mask_blend (θ → m, x̃) and cd_mask_step (closed-form ∂J/∂θ fused with
Adam, betas 0.1/0.1) around one forward and one input-gradient pass of the frozen model. The colours r come from a
counter-based hash of (seed, step, image index, channel) computed on the device, so an image's masks do not depend
on the batch it is in, and the loop reads nothing back to the host.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from robustfast._util.checks import check_images, is_int, require
from robustfast._util.frozen import frozen_eval, model_device
from robustfast.ops import cd_mask_blend, cd_mask_step
from robustfast.ops.cd_mask_step import check_hyper

MODES = {"logits": {"gamma": 0.01, "beta": 1.0, "lr": 0.1},
         "features": {"gamma": 0.001, "beta": 10.0, "lr": 0.05}}
B_REF = 100  # the reference batch: the objective is scaled by 1/B_REF whatever the batch (spec §2)

_MIX = (-7046029254386353131, -4658895280553007687, -7723592293110705685)  # splitmix64 constants as int64


def _i64(v: int) -> int:
    """A Python int wrapped to int64, as torch's int64 arithmetic wraps."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def colours(seed: int, step: int, index: torch.Tensor, channels: int) -> torch.Tensor:
    """Uniform [0, 1) colours (N, channels) keyed by (seed, step, image index, channel): splitmix64 on the device."""
    key = index.long()[:, None] * channels + torch.arange(channels, device=index.device)
    z = key * _MIX[0] + _i64((seed * 1_000_003 + step) * _MIX[1])
    z = (z ^ _shr(z, 30)) * _MIX[1]
    z = (z ^ _shr(z, 27)) * _MIX[2]
    z = z ^ _shr(z, 31)
    return _shr(z, 40).double() / float(1 << 24)


def default_feature_layer(model: nn.Module, images: torch.Tensor) -> str:
    """The last module to finish with a spatial (N×C×H×W, H·W > 1) output in one forward: the module before
    global pooling (SmallCNN: features.2, ResNet-18: layer4)."""
    last = []
    hooks = [module.register_forward_hook(lambda mod, inp, out, name=name: last.append(name)
                                          if isinstance(out, torch.Tensor) and out.dim() == 4
                                          and out.shape[2] * out.shape[3] > 1 else None)
             for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for h in hooks:
            h.remove()
    if not last:
        raise ValueError("feature_layer: the model has no module with a spatial output; name one explicitly")
    return last[-1]


class CognitiveDistillation:
    """Masks and ‖m‖₁ scores of Cognitive Distillation for a trained classifier (frozen and in eval mode while it
    runs; its mode and requires_grad flags are restored afterwards, also on error).

    mode: "logits" (CD-L: mean |Δ logits|) or "features" (CD-F: mean |Δ φ| of `feature_layer`, a module name;
    default: the last module before global pooling). gamma, beta, lr default per mode (spec table). p: 1 or 2 for
    the mask-size term. mask_channels: 1 or the images' C. preprocess: applied to both the masked and the clean
    image before the model. amp: bf16 autocast for the model. compile: torch.compile the model's forward and
    input gradient."""

    def __init__(self, model: nn.Module, mode: str = "logits", feature_layer: str | None = None,
                 gamma: float | None = None, beta: float | None = None, lr: float | None = None, steps: int = 100,
                 p: int = 1, mask_channels: int = 1, preprocess=None, seed: int = 0, amp: bool = False,
                 compile: bool = False):
        require("model", model, isinstance(model, nn.Module), "a torch.nn.Module")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        defaults = MODES[mode]
        self.gamma = defaults["gamma"] if gamma is None else gamma
        self.beta = defaults["beta"] if beta is None else beta
        self.lr = defaults["lr"] if lr is None else lr
        check_hyper(self.lr, self.gamma, self.beta, p)
        require("steps", steps, is_int(steps) and steps >= 1, "an int >= 1")
        require("mask_channels", mask_channels, is_int(mask_channels) and mask_channels >= 1,
                "1 or the images' channel count")
        require("seed", seed, is_int(seed) and seed >= 0, "an int >= 0")
        require("preprocess", preprocess, preprocess is None or callable(preprocess), "None or a callable")
        if feature_layer is not None:
            if mode != "features":
                raise ValueError(f"feature_layer is only used with mode='features', got mode={mode!r}")
            names = dict(model.named_modules())
            if feature_layer not in names or not feature_layer:
                raise ValueError(f"feature_layer {feature_layer!r} is not a module of the model; some names: "
                                 f"{', '.join([n for n in names if n][-8:])}")
        self.model, self.mode, self.feature_layer = model, mode, feature_layer
        self.steps, self.p, self.mask_channels = int(steps), int(p), int(mask_channels)
        self.preprocess, self.seed, self.amp = preprocess, int(seed), bool(amp)
        self._grad_fn = torch.compile(self._input_grad) if compile else self._input_grad

    # --- the model's side of one step ----------------------------------------------------------------------
    def _output(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        ctx = torch.autocast(x.device.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        with ctx:
            if self.mode == "logits":
                out = self.model(x)
            else:
                captured = []
                module = dict(self.model.named_modules())[self.feature_layer]
                hook = module.register_forward_hook(lambda mod, inp, o: captured.append(o))
                try:
                    self.model(x)
                finally:
                    hook.remove()
                out = captured[-1]
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out

    def _input_grad(self, xt: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """G = ∂/∂x̃ of Σ_i mean|f(x̃_i) − f(x_i)| / B_REF."""
        xt = xt.detach().requires_grad_(True)
        with torch.enable_grad():
            diff = (self._output(xt) - target).abs().flatten(1).mean(1).sum() / B_REF
            (grad,) = torch.autograd.grad(diff, xt)
        return grad

    # --- the loop ------------------------------------------------------------------------------------------
    def _check(self, images: torch.Tensor, index) -> torch.Tensor:
        check_images(images, "images")
        if images.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"images must be float32 or float64, got {images.dtype}")
        c = images.shape[1]
        if self.mask_channels not in (1, c):
            raise ValueError(f"mask_channels must be 1 or the images' channel count {c}, got {self.mask_channels}")
        n = images.shape[0]
        if index is None:
            return torch.arange(n, device=images.device)
        if isinstance(index, int) and not isinstance(index, bool):
            return torch.arange(index, index + n, device=images.device)
        if not isinstance(index, torch.Tensor) or index.shape != (n,) or index.is_floating_point():
            raise ValueError(f"index must be an int offset or an integer tensor of shape ({n},)")
        return index.to(images.device)

    def masks(self, images: torch.Tensor, index=None) -> torch.Tensor:
        """Masks (N, mask_channels, H, W) after `steps` updates. index: each image's position in its dataset (an
        int offset or an (N,) tensor; default 0..N−1), which keys its colours."""
        device = model_device(self.model) or images.device
        index = self._check(images, index)
        x = images.to(device)
        index = index.to(device)
        if self.mode == "features" and self.feature_layer is None:
            self.feature_layer = default_feature_layer(self.model, x)
        n, c, h, w = x.shape
        with frozen_eval(self.model):
            with torch.no_grad():
                target = self._output(x)
            theta = torch.ones(n, self.mask_channels, h, w, dtype=x.dtype, device=device)
            exp_avg, exp_avg_sq = torch.zeros_like(theta), torch.zeros_like(theta)
            for step in range(1, self.steps + 1):
                r = colours(self.seed, step, index, c).to(x.dtype)
                _, xt = cd_mask_blend(theta, x, r)
                grad = self._grad_fn(xt, target)
                theta, exp_avg, exp_avg_sq = cd_mask_step(grad, x, r, theta, exp_avg, exp_avg_sq, step=step,
                                                          lr=self.lr, gamma=self.gamma, beta=self.beta, p=self.p,
                                                          scale=1.0 / B_REF)
        return (torch.tanh(theta) + 1) / 2

    __call__ = masks

    def score(self, images: torch.Tensor, index=None) -> torch.Tensor:
        """‖m‖₁ per image (N,): small means likely backdoored."""
        return self.masks(images, index).flatten(1).sum(1)

