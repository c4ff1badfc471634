"""The reading pipeline: sources -> hooks -> stage (hold-back, run tagging) -> journal.

Sources call :meth:`Pipeline.on_reading` from the event loop. Readings the
stage releases are written to the journal in batches by one writer task, so
a burst of readings costs one journal write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from wattd.clock.gate import SyncGate
from wattd.clock.timesource import Clock
from wattd.journal.writer import Journal
from wattd.logsetup import get_logger
from wattd.readings import Reading

log = get_logger("wattd.pipeline")

# Readings wake the writer; the timer only releases held-back readings when a
# meter goes quiet, so it can be slow.
PUMP_INTERVAL_S = 0.25
# Readings are written in batches at most this old: a journal write costs a
# worker-thread hop, and batching keeps the daemon's CPU share small at the
# chip's real rate while staying well inside the fsync interval.
WRITE_BATCH_S = 0.2


class ReadingStage(Protocol):
    def push(self, reading: Reading) -> None: ...

    def pop_ready(self, now_boot_ns: int) -> list[Reading]: ...

    def flush_all(self) -> list[Reading]: ...


class PassThroughStage:
    """No hold-back, no tagging: what the core ships before markers exist."""

    def __init__(self) -> None:
        self._ready: list[Reading] = []

    def push(self, reading: Reading) -> None:
        self._ready.append(reading)

    def pop_ready(self, now_boot_ns: int) -> list[Reading]:
        ready, self._ready = self._ready, []
        return ready

    def flush_all(self) -> list[Reading]:
        return self.pop_ready(0)


ReadingHook = Callable[[Reading], None]


class Pipeline:
    def __init__(self, journal: Journal, clock: Clock, stage: ReadingStage | None = None) -> None:
        self.journal = journal
        self.clock = clock
        self.stage: ReadingStage = stage or PassThroughStage()
        # Called on every reading before the stage (e.g. clock health sets clock_synced).
        self.hooks: list[ReadingHook] = []
        # Consulted before each journal write: False holds readings (require_sync).
        self.write_gate: Callable[[], bool] = lambda: True
        # clock.require_sync: holds released readings (bounded) until the clock is synced.
        self.sync_gate: SyncGate | None = None
        self._ready: list[Reading] = []
        self._wake = asyncio.Event()
        self.readings_in = 0
        self.readings_written = 0
        self.last_reading: dict[str, Reading] = {}
        self.progress = 0  # bumped by the writer task each cycle (watchdog liveness)
        self.batch_s = min(WRITE_BATCH_S, journal.cfg.fsync_interval_s / 4)

    def on_reading(self, reading: Reading) -> None:
        self.readings_in += 1
        for hook in self.hooks:
            try:
                hook(reading)
            except Exception:
                log.exception("reading_hook_failed")
        self.last_reading[reading.meter] = reading
        self.stage.push(reading)
        self._wake.set()

    async def run(self) -> None:
        """Writer task: moves released readings into the journal."""
        loop = asyncio.get_running_loop()
        while True:
            # A timer handle, not wait_for(): no task per cycle on this hot path.
            timer = loop.call_later(PUMP_INTERVAL_S, self._wake.set)
            await self._wake.wait()
            timer.cancel()
            self._wake.clear()
            self.progress += 1
            now_boot_ns = self.clock.boottime_ns()
            ready = self.stage.pop_ready(now_boot_ns)
            if self.sync_gate is not None:
                ready = self.sync_gate.release(ready, now_boot_ns)
            self._ready.extend(ready)
            await self._write()
            if self.batch_s > 0:
                await asyncio.sleep(self.batch_s)

    async def _write(self) -> None:
        if not self._ready or not self.write_gate():
            return
        batch, self._ready = self._ready, []
        lines = []
        for reading in batch:
            try:
                lines.append(reading.to_line())
            except ValueError as exc:  # a non-finite value: counted, never written
                log.error("reading_unwritable", meter=reading.meter, error=str(exc))
        try:
            await self.journal.append(lines)
        except OSError:
            # Disk trouble: keep the readings and try again next cycle.
            self._ready[:0] = batch
            await asyncio.sleep(1.0)
            return
        self.readings_written += len(lines)

    async def drain(self) -> None:
        """Shutdown: release everything held back and write it."""
        ready = self.stage.flush_all()
        if self.sync_gate is not None:
            ready = self.sync_gate.flush() + ready
        self._ready.extend(ready)
        gate = self.write_gate
        self.write_gate = lambda: True
        try:
            await self._write()
        finally:
            self.write_gate = gate

    def status(self) -> dict[str, object]:
        return {"readings_in": self.readings_in, "readings_written": self.readings_written,
                "pending": len(self._ready)}
