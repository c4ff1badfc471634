"""Capped exponential backoff with jitter: one small object with a state."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays initial_s, x factor, ... capped at max_s, each scaled by a random
    factor in [1 - jitter, 1 + jitter] (so many daemons restarted together do not
    hammer a database in step). `reset()` after a success."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 60.0, factor: float = 2.0,
                 jitter: float = 0.25, rng: Callable[[], float] = random.random) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("bad backoff parameters")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self.attempts = 0

    def next_delay(self, retry_after_s: float | None = None, floor_s: float = 0.0) -> float:
        """The delay before the next attempt; never shorter than the server's
        Retry-After nor `floor_s` (used for slow retries of auth failures)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        delay = base * (1.0 - self.jitter + 2.0 * self.jitter * self._rng())
        delay = min(delay, self.max_s)
        return max(delay, retry_after_s or 0.0, floor_s)

    def reset(self) -> None:
        self.attempts = 0
