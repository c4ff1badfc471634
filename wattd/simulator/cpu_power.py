"""A simulated load that follows this machine's real CPU use (SPEC 9.5):
``idle_w + (busy_w - idle_w) x u``, u the whole machine's CPU utilisation
(/proc/stat, all cores, 0..1) over the last frame period.

The chip models ask for the power many times per frame (sub-steps of the
energy integral); /proc/stat is read at most once per ``min_period_s`` and
the utilisation of the period just ended holds until the next read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def read_host_ticks() -> tuple[int, int]:
    from wattd.probe.procfs import parse_host_stat, read_text

    return parse_host_stat(read_text("/proc/stat"))


class CpuFollowingPower:
    """A :class:`~wattd.simulator.power_profile.PowerSource`."""

    def __init__(self, idle_w: float = 2.0, busy_w: float = 5.0, *,
                 min_period_s: float = 0.05,
                 read_ticks: Callable[[], tuple[int, int]] = read_host_ticks) -> None:
        if not 0 <= idle_w <= busy_w:
            raise ValueError("power_model cpu needs 0 <= idle_w <= busy_w")
        self.idle_w = idle_w
        self.busy_w = busy_w
        self.min_period_s = min_period_s
        self._read_ticks = read_ticks
        self._lock = threading.Lock()
        self._last_t_s: float | None = None
        self._last_ticks: tuple[int, int] | None = None
        self.utilisation = 0.0

    def power_at(self, t_s: float) -> float:
        with self._lock:
            if self._last_t_s is None or t_s - self._last_t_s >= self.min_period_s:
                self._sample()
                self._last_t_s = t_s
            return self.idle_w + (self.busy_w - self.idle_w) * self.utilisation

    def _sample(self) -> None:
        try:
            busy, total = self._read_ticks()
        except (OSError, ValueError):
            return  # keep the last utilisation: a simulation, not a measurement
        if self._last_ticks is not None and total > self._last_ticks[1]:
            share = (busy - self._last_ticks[0]) / (total - self._last_ticks[1])
            self.utilisation = min(1.0, max(0.0, share))
        self._last_ticks = (busy, total)
