"""Learning-rate multipliers. Two schedules that count time differently, hence two names:

- `epoch_lr_factor`: a function of the fractional epoch (image classifiers: cosine per batch, step decay);
- `step_lr_factor`: a function of the optimizer step with linear warm-up (the Hugging Face schedules, LLMs).
"""
from __future__ import annotations

import math

EPOCH_SCHEDULES = ("cosine", "step", "constant")
STEP_SCHEDULES = ("cosine", "linear", "constant")


def epoch_lr_factor(schedule: str, t: float, epochs: int) -> float:
    """The learning-rate multiplier at fractional epoch t (0 ≤ t < epochs).

    cosine: ½(1 + cos(π t / epochs)), updated every batch; step: ×0.1 from epoch ⌈epochs/2⌉ and again from
    epoch ⌈3·epochs/4⌉ (0-based, whole epochs); constant: 1.
    """
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t / epochs))
    if schedule == "step":
        e = math.floor(t)
        return 0.1 ** ((e >= 0.5 * epochs) + (e >= 0.75 * epochs))
    return 1.0


def step_lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the learning rate at optimizer step `step` (0-based): linear warm-up from 0 over `warmup`
    steps, then cosine or linear decay to 0 at `total`, or constant (the Hugging Face schedules)."""
    if step < warmup:
        return step / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else max(0.0, 1 - progress)
