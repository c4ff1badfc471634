"""The daemon: wires meters, the pipeline, the journal and the services together.

Start order: journal (so nothing is lost), pipeline writer, meters (a meter
that cannot be opened keeps retrying: it never stops the daemon), then the
periodic power log. Stop order is the reverse, and the pipeline is drained
into the journal before it closes, so SIGINT/SIGTERM lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.clock.wiring import install_clock
from wattd.config import Config
from wattd.daemon.allocator import fix_mmap_threshold
from wattd.daemon.meters import MeterSet
from wattd.daemon.pipeline import Pipeline
from wattd.daemon.service import ServiceManager
from wattd.journal.writer import Journal
from wattd.logsetup import get_logger
from wattd.markers.wiring import install_markers
from wattd.metrics.wiring import install_prometheus
from wattd.sinks.wiring import install_sinks
from wattd.sources.gpio_panel import install_gpio_panel

log = get_logger("wattd.daemon")

POWER_LOG_INTERVAL_S = 5.0

StatusFn = Callable[[], dict[str, Any]]
Hook = Callable[[], Awaitable[None]]


class Daemon:
    def __init__(self, cfg: Config, *, simulate: bool = False, clock: Clock = SYSTEM_CLOCK,
                 power_log_interval_s: float = POWER_LOG_INTERVAL_S,
                 unpaced: bool = False) -> None:
        self.cfg = cfg
        self.simulate = simulate
        self.clock = clock
        self.power_log_interval_s = power_log_interval_s
        self.journal = Journal(cfg.journal)
        self.pipeline = Pipeline(self.journal, clock)
        self.meters = MeterSet(cfg.meters, clock=clock, on_reading=self.pipeline.on_reading,
                               simulate=simulate,
                               unpaced_in_flight=self._in_flight if unpaced else None)
        self._stop = asyncio.Event()
        self._status: dict[str, StatusFn] = {}
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        # Services plug in here: started after the journal and pipeline, stopped before them.
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        # Run after the pipeline is drained into the journal (database deliveries).
        self.delivery_shutdown_hooks: list[Hook] = []
        self.add_status("journal", self.journal.stats)
        self.add_status("pipeline", self.pipeline.status)
        self.add_status("meters", self.meters.status)
        self.add_status("process", process_status)
        # Clock health: clock_synced on every reading, require_sync gate, step events.
        self.clock_service = install_clock(self)
        # Markers: UDP port, run engine (replaces the pass-through stage), run reopen.
        self.markers = install_markers(self)
        # Optional Raspberry Pi panel: status LED while a run is open, start/stop button.
        self.gpio_panel = install_gpio_panel(self)
        # Database sinks: one delivery loop per `influxdb` entry, reading the journal.
        self.sinks = install_sinks(self)
        # Optional Prometheus /metrics (SPEC 10), read from the status at scrape time.
        self.prometheus = install_prometheus(self)
        # systemd: READY/WATCHDOG/STATUS/RELOADING/STOPPING (no-ops outside systemd).
        self.service = ServiceManager(self)

    # -- status --------------------------------------------------------------

    def add_status(self, name: str, fn: StatusFn) -> None:
        self._status[name] = fn

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, fn in self._status.items():
            try:
                out[name] = fn()
            except Exception as exc:  # noqa: BLE001 - status must always answer
                out[name] = {"error": str(exc)}
        return out

    def _in_flight(self) -> int:
        """Readings taken in but not yet journalled, or journalled but not yet delivered
        by the slowest reachable sink (this session): how far behind the whole path is.
        Unpaced simulated meters (load tests) wait while it is large. A sink that is
        down does not count: the journal absorbs that, as it does for real meters."""
        behind = self.pipeline.readings_in - self.pipeline.readings_written
        written = self.journal.lines_written
        for delivery in self.sinks:
            if delivery.state == "running":
                behind = max(behind,
                             written - delivery.delivered_points - delivery.dropped_points)
        return behind

    def start_task(self, name: str, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks[name] = task
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task_crashed", task=task.get_name(), error=repr(exc))
            self.request_stop()

    # -- lifecycle -------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        # First: glibc arenas keep whatever they held before this (wattd.daemon.allocator).
        fix_mmap_threshold()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.service.request_reload)
        await self.journal.open()
        try:
            self.start_task("pipeline", self.pipeline.run())
            for hook in self.startup_hooks:
                await hook()
            await self.meters.start()
            self.start_task("power-log", self._power_log())
            log.info("daemon_started", meters=[m.name for m in self.cfg.meters],
                     simulate=self.simulate, journal=str(self.journal.dir))
            await self.service.started()
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    def _on_signal(self, sig: int) -> None:
        log.info("signal_received", signal=signal.Signals(sig).name)
        self.request_stop()

    async def _shutdown(self) -> None:
        """Stop in the order that loses nothing: meters; the services that still
        write points (markers answer waiting stops); the pipeline, drained into
        the journal; then the deliveries, which get their bounded chance to send
        everything, the drained tail included; then the journal closes."""
        log.info("daemon_stopping")
        self.service.stopping()
        await self.meters.stop()
        await self._run_hooks(self.shutdown_hooks)
        pipeline_task = self.tasks.pop("pipeline", None)
        if pipeline_task is not None:
            pipeline_task.cancel()
            await asyncio.gather(pipeline_task, return_exceptions=True)
        await self.pipeline.drain()
        await self._run_hooks(self.delivery_shutdown_hooks)
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        await self.journal.close()
        log.info("daemon_stopped", readings=self.pipeline.readings_written)
        self.service.close()

    @staticmethod
    async def _run_hooks(hooks: list[Hook]) -> None:
        for hook in reversed(hooks):
            try:
                await hook()
            except Exception:
                log.exception("shutdown_hook_failed")

    async def _power_log(self) -> None:
        """Live power in the log, one line per meter."""
        while True:
            await asyncio.sleep(self.power_log_interval_s)
            for meter in self.cfg.meters:
                reading = self.pipeline.last_reading.get(meter.name)
                if reading is None:
                    log.info("power", meter=meter.name, state="no reading yet")
                    continue
                log.info("power", meter=meter.name, power_w=_round(reading.power_w),
                         voltage_v=_round(reading.voltage_v),
                         current_a=_round(reading.current_a, 3),
                         energy_j=_round(reading.energy_j), status=reading.status)


def process_status() -> dict[str, Any]:
    """Resource use, for `wattd status` and soak tests: asyncio tasks, open file
    descriptors, resident memory (Linux /proc; absent elsewhere)."""
    out: dict[str, Any] = {"tasks": len(asyncio.all_tasks())}
    with contextlib.suppress(OSError):
        out["fds"] = len(os.listdir("/proc/self/fd"))
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mb" if line.startswith("VmRSS:") else "peak_rss_mb"
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
