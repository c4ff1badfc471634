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


# realtime - boottime changes only when the realtime clock is stepped (settimeofday,
# an NTP step, a leap second) or across a suspend: NTP slewing moves both clocks
# alike. A pair read measures it with the read's own jitter (a few microseconds on
# a VM, up to ``tight_ns`` when preempted), and that jitter moved each reading's boot
# stamp against its realtime stamp: the daemon's online integral (boot time) and
# `wattd report`'s (realtime) of one run then differed by ~1e-6 across a power step
# (bench/bench_fidelity.py). So the offset of the previous pair is kept while a new
# read agrees with it within OFFSET_SNAP_NS, and the pair's boot time follows from
# it: every stamp and boundary then converts with one offset, and the two integrals
# agree to rounding. A larger change is a step, taken at once (from a tight pair).
OFFSET_SNAP_NS = 200_000
_offsets: dict[int, int] = {}  # id(clock) -> realtime - boottime in use
_OFFSETS_MAX = 64


def clock_pair(clock: Clock, tries: int = 5, tight_ns: int = 20_000) -> tuple[int, int]:
    """(realtime, boottime) of one instant. The two reads are bracketed by a
    second realtime read and retried when they were far apart: on a busy
    machine the process can be preempted between them, and a pair read across
    a preemption would shift a boundary converted to boot time by that much.
    Consecutive pairs of one clock share one realtime - boottime offset unless
    it moved by more than OFFSET_SNAP_NS (see above)."""
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
    gap, real, boot = best
    key = id(clock)
    kept = _offsets.get(key)
    # A loose pair (preempted on every try) measures nothing: keep the offset.
    if kept is not None and (gap > tight_ns or abs(real - boot - kept) <= OFFSET_SNAP_NS):
        return real, real - kept
    if len(_offsets) >= _OFFSETS_MAX:
        _offsets.clear()
    _offsets[key] = real - boot
    return real, boot
