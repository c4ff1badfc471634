"""The clock pair every stamp comes from, injectable for tests.

Stamps are CLOCK_REALTIME (NTP-disciplined); durations and the online energy
integral use CLOCK_BOOTTIME (monotonic, counts through suspend).
"""

from __future__ import annotations

import functools
import time
import weakref
from collections import deque
from collections.abc import Callable
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
# The system clock's reads without a Python call each (clock_pair runs per frame).
_SYSTEM_READS = (functools.partial(time.clock_gettime_ns, time.CLOCK_REALTIME),
                 functools.partial(time.clock_gettime_ns, time.CLOCK_BOOTTIME))


# realtime - boottime changes only when the realtime clock is stepped (settimeofday,
# an NTP step, a leap second) or across a suspend: NTP slewing moves both clocks
# alike. A pair read measures it with the read's own jitter (a few microseconds on
# a VM, up to ``tight_ns`` when preempted), and that jitter moved each reading's boot
# stamp against its realtime stamp: the daemon's online integral (boot time) and
# `wattd report`'s (realtime) of one run then differed by ~1e-6 across a power step
# (bench/bench_fidelity.py). So the offset of the previous pair is kept while a new
# read agrees with it within OFFSET_SNAP_NS, and the pair's boot time follows from
# it: every stamp and boundary then converts with one offset, and the two integrals
# agree to rounding. A larger change is a step, taken at once (from a tight pair)
# and remembered, so that a run it falls in is flagged ``clock_step`` even when it
# is far below the health monitor's ``step_threshold_ms`` (a 20 ms step moved a
# 100 W run's report by 2 J, unflagged).
OFFSET_SNAP_NS = 200_000
TIGHT_NS = 20_000  # a pair read within this is tight (not preempted)
STEP_HISTORY = 256


class _Kept:
    """One clock's offset in use, the boot time of its latest pair, and the
    boot-time spans its steps fell in."""

    __slots__ = ("boot_ns", "offset_ns", "steps")

    def __init__(self, offset_ns: int, boot_ns: int) -> None:
        self.offset_ns = offset_ns
        self.boot_ns = boot_ns
        self.steps: deque[tuple[int, int]] = deque(maxlen=STEP_HISTORY)


# Per clock object; the system clock (slots, no weak reference) lives for ever.
_kept: weakref.WeakKeyDictionary[object, _Kept] = weakref.WeakKeyDictionary()
_kept_system: dict[int, _Kept] = {}


def _state(clock: object) -> _Kept | None:
    if type(clock) is SystemClock:  # no weak reference (slots): by id, no exception
        return _kept_system.get(id(clock))
    try:
        return _kept.get(clock)
    except TypeError:
        return _kept_system.get(id(clock))


def _remember(clock: object, kept: _Kept) -> None:
    try:
        _kept[clock] = kept
    except TypeError:
        _kept_system[id(clock)] = kept


def clock_reads(clock: Clock) -> tuple[Callable[[], int], Callable[[], int]]:
    """``clock``'s (realtime, boottime) reads; for the system clock without a Python
    call each (a port's reader thread reads them per frame)."""
    if type(clock) is SystemClock:
        return _SYSTEM_READS
    return clock.realtime_ns, clock.boottime_ns


def clock_pair(clock: Clock, tries: int = 5, tight_ns: int = TIGHT_NS) -> tuple[int, int]:
    """(realtime, boottime) of one instant. The two reads are bracketed by a
    second realtime read and retried when they were far apart: on a busy
    machine the process can be preempted between them, and a pair read across
    a preemption would shift a boundary converted to boot time by that much.
    Consecutive pairs of one clock share one realtime - boottime offset unless
    it moved by more than OFFSET_SNAP_NS (see above)."""
    best: tuple[int, int, int] | None = None
    realtime, boottime = clock_reads(clock)
    for _ in range(tries):
        rt1 = realtime()
        boot = boottime()
        rt2 = realtime()
        if best is None or rt2 - rt1 < best[2] - best[0]:
            best = (rt1, boot, rt2)
        if rt2 - rt1 <= tight_ns:
            break
    assert best is not None
    return settle_pair(clock, *best, tight_ns=tight_ns)


def settle_pair(clock: Clock, rt1: int, boot: int, rt2: int,
                tight_ns: int = TIGHT_NS) -> tuple[int, int]:
    """(realtime, boottime) from one bracketed read (realtime ``rt1``, boottime
    ``boot``, realtime ``rt2``), with the kept offset rule above: what
    :func:`clock_pair` does after reading, for reads taken elsewhere (a port's
    reader thread reads and stamps; the event loop settles the pair later)."""
    gap = rt2 - rt1
    real = (rt1 + rt2) // 2
    kept = _state(clock)
    if kept is None:
        _remember(clock, _Kept(real - boot, boot))
        return real, boot
    # A loose pair (preempted on every try) measures nothing: keep the offset.
    if gap > tight_ns or abs(real - boot - kept.offset_ns) <= OFFSET_SNAP_NS:
        kept.boot_ns = max(kept.boot_ns, real - kept.offset_ns)
        return real, real - kept.offset_ns
    kept.steps.append((kept.boot_ns, boot))
    kept.offset_ns = real - boot
    kept.boot_ns = boot
    return real, boot


def stepped_between(clock: Clock, boot_a_ns: int, boot_b_ns: int) -> bool:
    """Did :func:`clock_pair` see ``clock``'s offset step within [a, b] (boot time)?
    A step lies between the two pairs around it: any overlap counts."""
    kept = _state(clock)
    if kept is None:
        return False
    lo, hi = min(boot_a_ns, boot_b_ns), max(boot_a_ns, boot_b_ns)
    return any(before <= hi and after >= lo for before, after in kept.steps)
