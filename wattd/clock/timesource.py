"""The clock pair every stamp comes from, injectable for tests.

Stamps are CLOCK_REALTIME (NTP-disciplined); durations and the online energy
integral use CLOCK_BOOTTIME (monotonic, counts through suspend).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def realtime_ns(self) -> int: ...

    def boottime_ns(self) -> int: ...


class SystemClock:
    """The kernel's clocks."""

    __slots__ = ()

    def realtime_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_REALTIME)

    def boottime_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


SYSTEM_CLOCK = SystemClock()


def clock_pair(clock: Clock, tries: int = 5, tight_ns: int = 20_000) -> tuple[int, int]:
    """(realtime, boottime) of one instant. The two reads are bracketed by a
    second realtime read and retried when they were far apart: on a busy
    machine the process can be preempted between them, and a pair read across
    a preemption would shift a boundary converted to boot time by that much."""
    best: tuple[int, int, int] | None = None
    for _ in range(tries):
        rt1 = clock.realtime_ns()
        boot = clock.boottime_ns()
        rt2 = clock.realtime_ns()
        gap = rt2 - rt1
        if best is None or gap < best[0]:
            best = (gap, (rt1 + rt2) // 2, boot)
        if gap <= tight_ns:
            break
    assert best is not None
    return best[1], best[2]
