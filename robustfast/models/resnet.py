"""CIFAR ResNet-18 and PreAct-ResNet-18: 3×3 stride-1 stem, no max-pool, adaptive average pool before the
head, so 32×32 and 8×8 inputs both work. Parameter names follow the widely used CIFAR code
(kuangliu/pytorch-cifar; Rice et al.'s robust-overfitting PreActResNet18): their state dicts load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3(a: int, b: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, a: int, b: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = _conv3(a, b, stride), nn.BatchNorm2d(b)
        self.conv2, self.bn2 = _conv3(b, b, 1), nn.BatchNorm2d(b)
        self.shortcut = nn.Sequential()
        if stride != 1 or a != b:
            self.shortcut = nn.Sequential(nn.Conv2d(a, b, 1, stride=stride, bias=False), nn.BatchNorm2d(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class PreActBasicBlock(nn.Module):
    def __init__(self, a: int, b: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(a), _conv3(a, b, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(b), _conv3(b, b, 1)
        self.shortcut = None
        if stride != 1 or a != b:
            self.shortcut = nn.Sequential(nn.Conv2d(a, b, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(u)
        return self.conv2(F.relu(self.bn2(self.conv1(u)))) + shortcut


def _stage(block, a: int, b: int, stride: int, n: int = 2) -> nn.Sequential:
    return nn.Sequential(block(a, b, stride), *[block(b, b, 1) for _ in range(n - 1)])


def _add_stages(net: nn.Module, block) -> None:
    net.layer1, net.layer2 = _stage(block, 64, 64, 1), _stage(block, 64, 128, 2)
    net.layer3, net.layer4 = _stage(block, 128, 256, 2), _stage(block, 256, 512, 2)


def _stages(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.config = {"num_classes": int(num_classes), "in_channels": int(in_channels)}
        self.conv1, self.bn1 = _conv3(in_channels, 64, 1), nn.BatchNorm2d(64)
        _add_stages(self, BasicBlock)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _stages(self, F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 with a final BN-ReLU before the pool, as in Rice et al.'s code."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.config = {"num_classes": int(num_classes), "in_channels": int(in_channels)}
        self.conv1 = _conv3(in_channels, 64, 1)
        _add_stages(self, PreActBasicBlock)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(_stages(self, self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))
