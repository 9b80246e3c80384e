"""WideResNet with a depth and a width factor per stage (robust_wrn spec §1).

Stage s (1, 2, 3) has round(16·2^(s−1)·w_s) channels and n_s pre-activation basic blocks; strides 1, 2, 2.
WRN-34-10 is depths (5, 5, 5), widths (10, 10, 10); WRN-34-R is depths (5, 5, 5), widths (20, 20, 8).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(a: int, b: int, k: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(a, b, k, stride=stride, padding=k // 2, bias=False)


class PreActBlock(nn.Module):
    """u = ReLU(BN(x)); out = conv(ReLU(BN(conv_s(u)))) + shortcut, the shortcut conv taking u when a ≠ b."""

    def __init__(self, a: int, b: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(a)
        self.conv1 = _conv(a, b, 3, stride)
        self.bn2 = nn.BatchNorm2d(b)
        self.conv2 = _conv(b, b, 3, 1)
        self.activated_shortcut = a != b
        self.shortcut = _conv(a, b, 1, stride) if a != b or stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.relu(self.bn1(x))
        r = self.conv2(F.relu(self.bn2(self.conv1(u))))
        if self.shortcut is None:
            return r + x
        return r + self.shortcut(u if self.activated_shortcut else x)


class WideResNet(nn.Module):
    def __init__(self, depths=(5, 5, 5), widths=(10, 10, 10), num_classes: int = 10,
                 stem_channels: int = 16, in_channels: int = 3):
        super().__init__()
        depths, widths = [int(n) for n in depths], [float(w) for w in widths]
        if len(depths) != 3 or min(depths) < 1:
            raise ValueError(f"depths must be three block counts >= 1, got {depths}")
        if len(widths) != 3 or min(widths) <= 0:
            raise ValueError(f"widths must be three positive width factors, got {widths}")
        self.config = {"depths": depths, "widths": widths, "num_classes": int(num_classes),
                       "stem_channels": int(stem_channels), "in_channels": int(in_channels)}
        self.channels = [int(stem_channels)] + [round(16 * 2**s * w) for s, w in enumerate(widths)]

        self.stem = _conv(in_channels, stem_channels, 3, 1)
        stages = []
        for s, (n, stride) in enumerate(zip(depths, (1, 2, 2), strict=True)):
            a, b = self.channels[s], self.channels[s + 1]
            blocks = [PreActBlock(a, b, stride)] + [PreActBlock(b, b, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.bn = nn.BatchNorm2d(self.channels[3])
        self.fc = nn.Linear(self.channels[3], num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # var 2/(k²·C_out)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc.bias)

    @property
    def depth(self) -> int:
        """The nominal depth 2(n1+n2+n3) + 4."""
        return 2 * sum(self.config["depths"]) + 4

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps after stages 1, 2 and 3 (before the head's BN-ReLU)."""
        out, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage_outputs(x)[-1]
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1).flatten(1)
        return self.fc(x)


def wrn34_10(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    return WideResNet((5, 5, 5), (10, 10, 10), num_classes, in_channels=in_channels)


def wrn34_12(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    return WideResNet((5, 5, 5), (12, 12, 12), num_classes, in_channels=in_channels)


def wrn34_r(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    return WideResNet((5, 5, 5), (20, 20, 8), num_classes, in_channels=in_channels)


def wrn34_20(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    return WideResNet((5, 5, 5), (20, 20, 20), num_classes, in_channels=in_channels)
