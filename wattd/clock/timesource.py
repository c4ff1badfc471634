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
