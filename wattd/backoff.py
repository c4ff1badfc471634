"""Capped exponential backoff with jitter: the one retry policy of every loop that
retries (meter ports, database writes, delivery processes, crashed sources).

Pure: it only computes delays; the caller sleeps them (and cuts the sleep short
on stop). Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable

# A restarted task (a process, a source) that ran this long before failing again
# was healthy in between: its next restart waits the first delay again.
HEALTHY_RUN_S = 60.0


class Backoff:
    """Delays initial_s, x factor, ... capped at max_s, each scaled by a random
    factor in [1 - jitter, 1 + jitter] (so many daemons restarted together do not
    hammer a database in step). ``reset()`` after a success. ``rng`` returns
    floats in [0, 1) (default: ``random.random``)."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 60.0, factor: float = 2.0,
                 jitter: float = 0.25, rng: Callable[[], float] | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("bad backoff parameters")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        if rng is None and jitter:
            import random  # only where there is jitter: the marker client stays light

            rng = random.random
        self._rng = rng or (lambda: 0.5)
        self.attempts = 0  # delays handed out since the last reset

    @property
    def base_delay_s(self) -> float:
        """The next delay before jitter."""
        return min(self.max_s, self.initial_s * self.factor ** min(self.attempts, 64))

    def next_delay(self, retry_after_s: float | None = None, floor_s: float = 0.0) -> float:
        """The delay before the next attempt; never shorter than the server's
        Retry-After nor ``floor_s`` (used for slow retries of auth failures)."""
        base = self.base_delay_s
        self.attempts += 1
        delay = base * (1.0 - self.jitter + 2.0 * self.jitter * self._rng())
        delay = min(delay, self.max_s)
        return max(delay, retry_after_s or 0.0, floor_s)

    def reset(self) -> None:
        self.attempts = 0

    def next_restart_delay(self, ran_s: float, healthy_run_s: float = HEALTHY_RUN_S) -> float:
        """The pause before restarting something that failed after running ``ran_s``:
        after a run longer than ``healthy_run_s`` the series starts again."""
        if ran_s > healthy_run_s:
            self.reset()
        return self.next_delay()
