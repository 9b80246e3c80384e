"""Input-aware dynamic trigger (IAD, Nguyen & Tran, NeurIPS 2020), learned here on the data at hand.

x' = x + (G(x) − x) ⊙ M(x): a pattern network G and a mask network M, small convnets built from the trigger's
seed. The mask keeps a `density` share of each image: M(x) = σ(10·(s − q)/σ_s), where s is the mask network's
score map, q its per-image (1 − density) quantile and σ_s its per-image spread. Untrained (the seeded random
networks) it is already an input-dependent trigger for pipeline tests; `fit` trains both networks on images with
IAD's diversity loss, ‖x₁ − x₂‖ / ‖G(x₁) − G(x₂)‖ (and the same for masks), so that different inputs get different
triggers. No checkpoint is downloaded.
"""
from __future__ import annotations

import torch
from torch import nn

from robustfast.backdoor.base import Trigger

_DIV_EPS = 1e-6


def _pattern_net(c: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(width, c, 3, padding=1), nn.Sigmoid())


def _mask_net(c: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))


class InputAware(Trigger):
    """The IAD trigger for images with `channels` channels; `density` is the share of pixels each mask keeps."""

    name = "iad"
    has_stage = True

    def __init__(self, seed: int = 0, truncate: bool = False, channels: int = 3, density: float = 0.1,
                 width: int = 16):
        if not 0 < density < 1:
            raise ValueError(f"density must lie in (0, 1), got {density}")
        super().__init__(seed, truncate, channels=channels, density=density, width=width)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.pattern_net = _pattern_net(channels, width)
            self.mask_net = _mask_net(channels, width)
        for net in (self.pattern_net, self.mask_net):
            net.requires_grad_(False).eval()

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) soft masks in [0, 1], about `density` of each image on."""
        s = self.mask_net(x).flatten(1)
        q = torch.quantile(s.detach(), 1 - self.kwargs["density"], dim=1, keepdim=True)
        spread = s.detach().std(dim=1, keepdim=True) + _DIV_EPS
        return torch.sigmoid(10 * (s - q) / spread).view(x.shape[0], 1, *x.shape[2:])

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[1] != self.kwargs["channels"]:
            raise ValueError(f"images have {x.shape[1]} channels but this IAD trigger was built for "
                             f"channels={self.kwargs['channels']}")

    def stage(self, x, generator):
        self._check(x)
        nets = (self.pattern_net, self.mask_net)
        for net in nets:
            net.to(device=x.device, dtype=x.dtype)
        with torch.no_grad():
            return x + (self.pattern_net(x) - x) * self.mask(x)

    def fit(self, images: torch.Tensor, epochs: int = 5, batch_size: int = 64, lr: float = 1e-3,
            seed: int = 0) -> list[float]:
        """Train the pattern and mask networks on float N×C×H×W images in [0, 1] with IAD's diversity loss;
        returns the mean loss of each epoch."""
        from robustfast._util.checks import check_images

        check_images(images, "images")
        self._check(images)
        nets = (self.pattern_net, self.mask_net)
        params = [p for net in nets for p in net.parameters()]
        for net in nets:
            net.to(device=images.device, dtype=images.dtype).requires_grad_(True).train()
        opt = torch.optim.Adam(params, lr=lr)
        g = torch.Generator().manual_seed(seed)
        history = []
        try:
            for _ in range(epochs):
                order = torch.randperm(len(images), generator=g).to(images.device)
                total, steps = 0.0, 0
                for i in range(0, len(images) - 1, batch_size):
                    x = images[order[i:i + batch_size]]
                    if len(x) < 2:
                        continue
                    x2 = x.roll(1, dims=0)
                    d_in = (x - x2).flatten(1).norm(dim=1)
                    d_pat = (self.pattern_net(x) - self.pattern_net(x2)).flatten(1).norm(dim=1)
                    d_mask = (self.mask(x) - self.mask(x2)).flatten(1).norm(dim=1)
                    loss = (d_in / (d_pat + _DIV_EPS)).mean() + (d_in / (d_mask + _DIV_EPS)).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total, steps = total + loss.item(), steps + 1
                history.append(total / max(steps, 1))
        finally:
            for net in nets:
                net.requires_grad_(False).eval()
        return history

    def state_tensors(self):
        nets = {"pattern": self.pattern_net, "mask": self.mask_net}
        return {f"{name}.{k}": v.detach().cpu() for name, net in nets.items() for k, v in net.state_dict().items()}

    def load_state_tensors(self, tensors):
        for name, net in (("pattern", self.pattern_net), ("mask", self.mask_net)):
            net.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(name + ".")})
