"""The clock as a daemon component: health monitor, the two pipeline stages, step events.

- ``stamp`` (first pipeline stage): every reading gets ``clock_synced`` from
  the health verdict when it is taken;
- ``gate`` (last pipeline stage, ``clock.require_sync``): holds what is ready
  for the journal (bounded) until sync or ``require_sync_timeout_s``;
- the health monitor polls every ``clock.poll_interval_s`` from start to stop;
- a realtime step is journalled at once (durable) as a ``wattd_marker``
  event ``run=clock_step``; ``stepped_between`` lets the marker engine flag
  runs ``clock_step``;
- ``status()``: the verdict, kernel state and gate state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wattd.clock.adjtimex import ClockStateReader, KernelReader
from wattd.clock.gate import ClockStamp, SyncGate, default_capacity
from wattd.clock.health import ClockHealth, ClockStep, step_marker_line
from wattd.clock.timesource import Clock
from wattd.clock.timesource import stepped_between as offset_stepped_between
from wattd.config import ClockConfig
from wattd.logsetup import get_logger

if TYPE_CHECKING:
    from wattd.journal.writer import Journal

log = get_logger("wattd.clock")


class ClockService:
    def __init__(self, cfg: ClockConfig, clock: Clock, journal: Journal, *, n_meters: int,
                 reader: ClockStateReader | None = None) -> None:
        self.clock = clock
        self.journal = journal
        self.health = ClockHealth(
            reader if reader is not None else KernelReader(), clock,
            max_error_ms=cfg.max_error_ms, poll_interval_s=cfg.poll_interval_s,
            step_threshold_ms=cfg.step_threshold_ms, on_step=self._on_step, logger=log)
        self.stamp = ClockStamp(self.is_synced)
        self.gate = SyncGate(self.is_synced, require_sync=cfg.require_sync,
                             timeout_s=cfg.require_sync_timeout_s,
                             start_boot_ns=clock.boottime_ns(),
                             capacity=default_capacity(n_meters), logger=log)
        self._writes: set[asyncio.Task[None]] = set()
        self.step_events_written = 0

    def is_synced(self) -> bool:
        return self.health.synced

    def stepped_between(self, boot_a_ns: int, boot_b_ns: int) -> bool:
        """Did the realtime clock (possibly) step within [a, b] on CLOCK_BOOTTIME? The
        health monitor's steps (``step_threshold_ms``, journaled), or any smaller
        one the stamps' clock pairs saw (:func:`wattd.clock.timesource.clock_pair`)."""
        return (self.health.stepped_between(boot_a_ns, boot_b_ns)
                or offset_stepped_between(self.clock, boot_a_ns, boot_b_ns))

    async def start(self) -> None:
        # the wait for sync counts from start-up, not from construction
        self.gate.start_boot_ns = self.clock.boottime_ns()
        self.health.start()  # polls once now: the first readings already get a verdict

    async def stop(self) -> None:
        await self.health.stop()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _on_step(self, step: ClockStep) -> None:
        task = asyncio.get_running_loop().create_task(self._write_step(step))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_step(self, step: ClockStep) -> None:
        try:
            await self.journal.append([step_marker_line(step)], durable=True)
        except OSError as exc:
            log.error("clock_step_event_unwritable", error=str(exc))
        else:
            self.step_events_written += 1

    def status(self) -> dict[str, object]:
        out = self.health.status()
        out["gate"] = self.gate.status()
        return out
