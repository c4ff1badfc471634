"""Plugs clock health into the daemon (like ``wattd.sinks.wiring.install_sinks``).

``install_clock(daemon)``:
- every reading gets ``clock_synced`` from the health verdict when it enters
  the pipeline (a pipeline hook);
- ``clock.require_sync``: the pipeline's ``sync_gate`` holds released
  readings (bounded) until sync or ``require_sync_timeout_s``;
- the health monitor polls every ``clock.poll_interval_s`` from start-up to
  shutdown;
- a realtime step is journalled at once (durable) as a ``wattd_marker``
  event ``run=clock_step``; ``ClockService.stepped_between`` lets the
  markers engine flag runs ``clock_step``;
- ``daemon.status()["clock"]``: the verdict, kernel state and gate state.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wattd.clock.adjtimex import ClockStateReader, KernelReader
from wattd.clock.gate import SyncGate, default_capacity
from wattd.clock.health import ClockHealth, ClockStep, step_marker_line
from wattd.logsetup import get_logger

log = get_logger("wattd.clock")


class ClockService:
    def __init__(self, daemon: Any, reader: ClockStateReader | None = None) -> None:
        cfg = daemon.cfg.clock
        self.daemon = daemon
        self.health = ClockHealth(
            reader if reader is not None else KernelReader(), daemon.clock,
            max_error_ms=cfg.max_error_ms, poll_interval_s=cfg.poll_interval_s,
            step_threshold_ms=cfg.step_threshold_ms, on_step=self._on_step, logger=log)
        self.gate = SyncGate(lambda: self.health.synced, require_sync=cfg.require_sync,
                             timeout_s=cfg.require_sync_timeout_s,
                             start_boot_ns=daemon.clock.boottime_ns(),
                             capacity=default_capacity(len(daemon.cfg.meters)), logger=log)
        self._writes: set[asyncio.Task[None]] = set()
        self.step_events_written = 0

    @property
    def synced(self) -> bool:
        return self.health.synced

    def stepped_between(self, boot_a_ns: int, boot_b_ns: int) -> bool:
        """Did the realtime clock (possibly) step within [a, b] on CLOCK_BOOTTIME?"""
        return self.health.stepped_between(boot_a_ns, boot_b_ns)

    async def start(self) -> None:
        # the wait for sync counts from start-up, not from construction
        self.gate.start_boot_ns = self.daemon.clock.boottime_ns()
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
            await self.daemon.journal.append([step_marker_line(step)], durable=True)
        except OSError as exc:
            log.error("clock_step_event_unwritable", error=str(exc))
        else:
            self.step_events_written += 1

    def status(self) -> dict[str, object]:
        out = self.health.status()
        out["gate"] = self.gate.status()
        return out


def install_clock(daemon: Any, reader: ClockStateReader | None = None) -> ClockService:
    service = ClockService(daemon, reader)
    daemon.pipeline.hooks.append(service.gate.stamp)
    daemon.pipeline.sync_gate = service.gate
    daemon.add_status("clock", service.status)
    daemon.startup_hooks.append(service.start)
    daemon.shutdown_hooks.append(service.stop)
    return service
