"""The noisy-labels section of `robustfast demo`: CE and NCE+RCE on digits with 60% symmetric label noise."""
from __future__ import annotations

from pathlib import Path

from robustfast._util.tables import table
from robustfast.losses.noisy import run


def section(device: str = "auto", out: str | Path = "runs/demo", *, epochs: int = 8, quick: bool = False) -> dict:
    """Clean test accuracy of a SmallCNN trained with each loss for the recipe's 40 epochs (`quick`: one, a check
    that it runs); {loss: accuracy}. Writes nothing under `out`; `epochs` is the attack section's."""
    recipe_epochs = 1 if quick else 40
    print(f"\nnoisy labels: 60% symmetric noise on the digits training labels, SmallCNN, {recipe_epochs} epochs per "
          "loss")
    rows = run(losses=("ce", "nce+rce"), rate=0.6, epochs=recipe_epochs, device=str(device), progress=False)
    print(table(rows, ["loss", "noise", "rate", "realised_rate", "test_acc"]))
    return {row["loss"]: row["test_acc"] for row in rows}
