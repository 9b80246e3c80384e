"""`Attack`: what every attack shares — argument and input checks, the frozen model, autocast, restarts, compile.

A subclass adds its own settings and implements `perturb`; everything else comes from here:

    class FGSM(Attack):
        def __init__(self, model, eps=8 / 255, **common):
            super().__init__(model, **common)            # restarts, seed, amp, compile, channels_last
            self.eps = check_number(eps, "eps", 0.0)
            self.step = self.compiled(self.eager_step)   # torch.compile when asked, else the function itself

        def eager_step(self, x, labels):
            x = x.detach().requires_grad_(True)
            loss = attack_loss(self.forward(x), labels, "ce", targeted=False).sum()
            (grad,) = torch.autograd.grad(loss, x)
            return (x + self.eps * grad.sign()).clamp(0, 1).detach()

        def perturb(self, images, labels):
            # inputs checked; the model is in eval mode with frozen parameters; gradients enabled
            x0, y = self.tile_restarts(images, labels)
            x = self.step(x0, y)
            if self.restarts == 1:
                return x
            with torch.no_grad():
                score = attack_loss(self.forward(x), y, "ce", targeted=False)
            return self.pick_restart(x, score, images.shape[0])

Calling the attack (`attack(images, labels)`) runs `check_inputs`, then, inside `frozen_eval`, `check_label_range`
(labels within the model's classes) and `perturb`: the model's train/eval mode and `requires_grad` flags are
restored afterwards.
"""
from __future__ import annotations

import math
import numbers

import torch

from robustfast._util.checks import check_images, check_labels
from robustfast._util.frozen import frozen_eval, model_device


def check_number(value, name: str, minimum: float, integer: bool = False, maximum: float = math.inf):
    """`value` if it is a number (an integer with `integer=True`) in [minimum, maximum], else a ValueError naming
    it; a finite `maximum` also rejects inf."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not minimum <= value <= maximum:
        what = "an integer" if integer else "a number"
        bound = f"in [{minimum:g}, {maximum:g}]" if maximum < math.inf else f">= {minimum}"
        raise ValueError(f"{name} must be {what} {bound}, got {value!r}")
    return value


class Attack:
    """Base class of the attacks: `adv = SomeAttack(model, ...)(images, labels)`.

    Images are N×C×H×W in [0, 1]; put normalisation inside the model (robustfast.models.Normalized). Labels are
    N class indices (the targets of a targeted attack). Common settings:
    restarts: independent starts, batched in one forward; `pick_restart` keeps the best per sample.
    seed: seeds the attack's own generator, so a call is reproducible.
    amp: run the model under bf16 autocast (`forward`).
    compile: torch.compile the functions a subclass passes to `compiled`; a string picks the mode, e.g.
      "reduce-overhead" for CUDA graphs on a GPU.
    channels_last: convert the model to channels_last in place and run the attack in that layout.

    Subclasses implement `perturb(images, labels)` and may extend `check_inputs`.
    """

    def __init__(self, model: torch.nn.Module, *, restarts: int = 1, seed: int = 0, amp: bool = False,
                 compile: bool | str = False, channels_last: bool = False):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.restarts = check_number(restarts, "restarts", 1, integer=True)
        self.seed = check_number(seed, "seed", 0, integer=True)
        self.amp = bool(amp)
        self.compile_mode = compile
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model.to(memory_format=torch.channels_last)

    def compiled(self, fn):
        """`fn` compiled with torch.compile when the attack was built with `compile`, else `fn` itself."""
        if not self.compile_mode:
            return fn
        return torch.compile(fn, mode=self.compile_mode if isinstance(self.compile_mode, str) else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's float32 logits, under bf16 autocast with `amp`."""
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x).float()

    def generator(self, device: torch.device) -> torch.Generator:
        """A fresh generator on `device` seeded with the attack's seed."""
        return torch.Generator(device=device).manual_seed(self.seed)

    def check_inputs(self, images, labels) -> None:
        """Images float N×C×H×W in [0, 1] (one host read), labels (N,) integers, model on the images' device."""
        check_images(images)
        check_labels(labels, images.shape[0], images.device)
        device = model_device(self.model)
        if device is not None and device != images.device:
            raise ValueError(f"the model is on {device} but images are on {images.device}; move one of them")

    def check_label_range(self, images, labels) -> None:
        """Labels in [0, classes), where classes is the width of the model's logits (one forward of one image
        without gradients, and one batched host read of the labels' range). Runs in eval mode, from `__call__`.
        An image the model cannot take (dtype, channels, size) is a ValueError naming `images`."""
        try:
            with torch.no_grad():
                logits = self.forward(images[:1])
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            raise ValueError(f"images of shape {tuple(images.shape)} and dtype {images.dtype} do not fit the model: "
                             f"{' '.join(str(err).split())[:300]}") from None
        if logits.dim() != 2:
            return  # not a classifier's N×classes logits: nothing to check the labels against
        classes = logits.shape[1]
        lo, hi = torch.stack([labels.min(), labels.max()]).tolist()
        if lo < 0 or hi >= classes:
            raise ValueError(f"labels must lie in [0, {classes}) for a model with {classes} outputs, "
                             f"got labels in [{lo}, {hi}]")

    def tile_restarts(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images repeated `restarts` times in the attack's memory format, labels repeated as int64): restart k
        of sample i is row k·N + i."""
        r = self.restarts
        return images.detach().repeat(r, 1, 1, 1).contiguous(memory_format=self.memory_format), labels.long().repeat(r)

    def pick_restart(self, x: torch.Tensor, score: torch.Tensor, n: int) -> torch.Tensor:
        """Per sample, the restart of highest `score` (shape (restarts·N,)) among the rows of `x`."""
        best = score.view(self.restarts, n).argmax(dim=0)
        return x.view(self.restarts, n, *x.shape[1:])[best, torch.arange(n, device=x.device)]

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement perturb(images, labels)")

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check_inputs(images, labels)
        with frozen_eval(self.model):
            self.check_label_range(images, labels)
            with torch.enable_grad():  # callers often hold no_grad around evaluation
                return self.perturb(images, labels)
