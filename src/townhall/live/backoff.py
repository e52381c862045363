"""Exponential backoff with jitter for a child reconnecting to its parent.

The delay after the n-th failure in a row (n from 0) is
``min(maximum, initial * factor ** n)``, shortened by up to ``jitter`` of
itself by a draw ``u`` in [0, 1) that the caller supplies, so that children
cut off together do not all knock at once. No clock and no random source
here: the room passes the time and a draw from the jitter source it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.factor >= 1 and 0 <= self.jitter < 1):
            raise ValueError("need 0 < initial <= maximum, factor >= 1, 0 <= jitter < 1")

    def delay(self, failures: int, draw: float) -> float:
        """Seconds to wait after ``failures`` failures in a row; ``draw`` in [0, 1)."""
        if not 0 <= draw < 1:
            raise ValueError("the jitter draw must be in [0, 1)")
        # Cap the exponent so a long outage never overflows a float.
        base = min(self.maximum, self.initial * self.factor ** min(failures, 64))
        return base * (1 - self.jitter * draw)
