"""Shared helpers of the bad-input suite: every rejection is a ValueError/TypeError that names what was wrong."""
from __future__ import annotations

import contextlib

import pytest
import torch


@contextlib.contextmanager
def rejected(*names, kind=(ValueError, TypeError)):
    """Expect a ValueError or TypeError whose message contains every one of `names` (argument, file, key)."""
    with pytest.raises(kind) as info:
        yield info
    message = str(info.value)
    for name in names:
        assert str(name) in message, f"{name!r} not named in: {message}"


def finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def images(n=4, c=3, h=8, w=8, seed=0) -> torch.Tensor:
    """Random (never all-zero) float images in [0, 1]."""
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))
