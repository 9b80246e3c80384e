"""What a noise search did: the train error after each round, the time, and whether the stop test passed."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class NoiseReport:
    """`errors[r]` is the surrogate's error on the noisy data (the stop test) after round r+1; `round_seconds[r]`
    its wall time (including rounds restored from a checkpoint). `converged` is True when the last error fell
    under `stop_error`; otherwise the search `stopped_on_cap` after `max_rounds` rounds."""

    kind: str
    stop_error: float
    max_rounds: int
    errors: list[float] = dataclasses.field(default_factory=list)
    round_seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.errors)

    @property
    def converged(self) -> bool:
        return bool(self.errors) and self.errors[-1] < self.stop_error

    @property
    def stopped_on_cap(self) -> bool:
        return not self.converged and self.rounds >= self.max_rounds

    @property
    def seconds(self) -> float:
        return sum(self.round_seconds)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rounds": self.rounds, "converged": self.converged,
                "stopped_on_cap": self.stopped_on_cap, "seconds": self.seconds}

    def __str__(self) -> str:
        outcome = (f"stop test passed (error {self.errors[-1]:.4f} < {self.stop_error:g})" if self.converged
                   else f"stopped on the cap of {self.max_rounds} rounds without passing the stop test "
                        f"(error {self.errors[-1]:.4f} >= {self.stop_error:g})" if self.errors
                   else "no rounds run")
        return f"{self.kind} noise: {self.rounds} rounds in {self.seconds:.1f} s, {outcome}"
