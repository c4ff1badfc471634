"""The clock's two stages in the reading pipeline.

:class:`ClockStamp` comes first: it sets every reading's ``clock_synced``
from the health verdict at the moment the reading is taken.

:class:`SyncGate` comes last (``clock.require_sync``): it holds what is ready
for the journal until the clock is synced:

- gate open (``require_sync: false``, or sync seen, or timeout passed):
  readings go straight through;
- gate holding: readings are buffered (bounded; the oldest is dropped, counted
  and logged as an error on overflow) and a status line is logged every
  ``status_every_s``;
- the first time the health monitor says synced, or when
  ``require_sync_timeout_s`` has passed (an error in the log: wattd never
  waits for ever), everything buffered is released in order and the gate
  stays open for good. Readings taken before sync keep ``clock_synced=false``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from wattd.logsetup import get_logger
from wattd.readings import Reading

READINGS_PER_S_PER_METER = 10
HOLD_CAPACITY_S = 600  # buffer up to 10 minutes of readings per meter
STATUS_EVERY_S = 10.0


def default_capacity(n_meters: int) -> int:
    return READINGS_PER_S_PER_METER * HOLD_CAPACITY_S * max(1, n_meters)


class ClockStamp:
    """Pipeline stage: records the clock verdict on each reading; holds nothing."""

    def __init__(self, is_synced: Callable[[], bool]) -> None:
        self.is_synced = is_synced

    def push(self, reading: Reading) -> Reading:
        reading.clock_synced = self.is_synced()
        return reading

    def pop_ready(self, now_boot_ns: int) -> Sequence[Reading]:
        return ()

    def flush_all(self) -> Sequence[Reading]:
        return ()


class SyncGate:
    """Pipeline stage: passes readings while open, holds them (bounded) while closed."""

    def __init__(self, is_synced: Callable[[], bool], *, require_sync: bool,
                 timeout_s: float, start_boot_ns: int, capacity: int = default_capacity(1),
                 status_every_s: float = STATUS_EVERY_S, logger: Any = None) -> None:
        self.is_synced = is_synced
        self.require_sync = require_sync
        self.timeout_ns = int(timeout_s * 1e9)
        self.start_boot_ns = start_boot_ns
        self.capacity = max(1, capacity)
        self.status_every_ns = int(status_every_s * 1e9)
        self.log = logger if logger is not None else get_logger("wattd.clock")
        self.held: deque[Reading] = deque()
        self.dropped = 0
        self.released_unsynced = 0
        self.open = not require_sync
        self.opened_by = "not_required" if self.open else ""
        self._next_status_ns = start_boot_ns
        self._dropped_logged = 0

    def push(self, reading: Reading) -> Reading | None:
        if self.open:
            return reading
        self.held.append(reading)
        if len(self.held) > self.capacity:
            self.held.popleft()
            self.dropped += 1
        return None

    def pop_ready(self, now_boot_ns: int) -> list[Reading]:
        """Open the gate on sync or timeout (everything held goes, in order)."""
        if self.open:
            return []
        if self.is_synced():
            return self._open("synchronised", now_boot_ns)
        waited_ns = now_boot_ns - self.start_boot_ns
        if waited_ns >= self.timeout_ns:
            return self._open("timeout", now_boot_ns)
        if now_boot_ns >= self._next_status_ns or self.dropped > self._dropped_logged:
            self._next_status_ns = now_boot_ns + self.status_every_ns
            log = self.log.error if self.dropped > self._dropped_logged else self.log.warning
            self._dropped_logged = self.dropped
            log("clock_waiting_for_sync", waited_s=round(waited_ns / 1e9, 1),
                timeout_s=self.timeout_ns / 1e9, held=len(self.held), dropped=self.dropped,
                hint="clock.require_sync: readings are held until the kernel reports sync")
        return []

    def _open(self, why: str, now_boot_ns: int) -> list[Reading]:
        self.open = True
        self.opened_by = why
        out = list(self.held)
        self.held.clear()
        self.released_unsynced = sum(1 for r in out if not r.clock_synced)
        waited_s = round((now_boot_ns - self.start_boot_ns) / 1e9, 1)
        if why == "timeout":
            self.log.error("clock_sync_timeout", waited_s=waited_s, released=len(out),
                           dropped=self.dropped,
                           hint="writing on with clock_synced=false; check the NTP daemon "
                                "('wattd clock')")
        else:
            self.log.info("clock_sync_gate_open", waited_s=waited_s, released=len(out),
                          released_unsynced=self.released_unsynced, dropped=self.dropped)
        return out

    def flush_all(self) -> list[Reading]:
        """Shutdown: everything held, as it is."""
        out = list(self.held)
        self.held.clear()
        return out

    def status(self) -> dict[str, object]:
        return {"require_sync": self.require_sync, "holding": not self.open,
                "held": len(self.held), "dropped": self.dropped,
                "opened_by": self.opened_by or None,
                "released_unsynced": self.released_unsynced}
