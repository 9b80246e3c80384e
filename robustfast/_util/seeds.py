"""Seeded random streams: independent, reproducible seeds derived from one user seed and stream tags."""
from __future__ import annotations

import numpy as np
import torch


def stream_seed(seed: int, *tags: int) -> int:
    """A 32-bit seed for the stream (seed, *tags), from numpy's SeedSequence: streams with different tags are
    independent, and a stream depends on nothing but its tags (so a resumed run draws what a fresh one would)."""
    return int(np.random.SeedSequence([seed, *tags]).generate_state(1)[0])


def stream_generator(seed: int, *tags: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `stream_seed(seed, *tags)`."""
    return torch.Generator().manual_seed(stream_seed(seed, *tags))
