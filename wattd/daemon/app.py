"""The daemon: the one place where every component is built and started.

Each component gets what it needs as typed constructor arguments; none of
them knows the daemon. They start in the order of ``Daemon.components`` and
stop in the reverse order, each after a successful start only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Coroutine, Sequence
from pathlib import Path

from wattd.allocator import fix_mmap_threshold
from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.clock.wiring import ClockService
from wattd.config import Config
from wattd.daemon.component import Component, Spawn
from wattd.daemon.meters import MeterSet
from wattd.daemon.pipeline import Pipeline, Stage
from wattd.daemon.service import ServiceManager
from wattd.journal.writer import Journal
from wattd.logsetup import get_logger
from wattd.markers.build import build_markers
from wattd.metrics.prometheus import PrometheusEndpoint
from wattd.metrics.snapshot import LastRuns, build_snapshot
from wattd.readings import Reading
from wattd.sinks.wiring import Sinks
from wattd.sources.gpio_panel import GpioPanel, udp_sender

log = get_logger("wattd.daemon")

POWER_LOG_INTERVAL_S = 5.0


class Daemon:
    def __init__(self, cfg: Config, *, simulate: bool = False, clock: Clock = SYSTEM_CLOCK,
                 power_log_interval_s: float = POWER_LOG_INTERVAL_S,
                 unpaced: bool = False) -> None:
        self.cfg = cfg
        self.simulate = simulate
        self.clock = clock
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._stop_failed = False
        meter_names = [m.name for m in cfg.meters]

        self.journal = Journal(cfg.journal)
        self.clock_service = ClockService(cfg.clock, clock, self.journal,
                                          n_meters=len(cfg.meters))
        # The last run's energy per meter (Prometheus), from the lines the markers journal.
        self._last_runs = LastRuns()
        # The marker UDP service (port, multicast group, run engine, run reopen) and its
        # run-tagging stage (hold-back), which the pipeline owns.
        self.markers, tagger = build_markers(
            cfg.markers, meter_names, self.journal, clock, status_provider=self.status,
            clock_step=self.clock_service.stepped_between, journal_dir=str(self.journal.dir),
            on_journaled=self._last_runs.observe if cfg.prometheus is not None else None)
        # Stamp clock_synced when a reading is taken, tag runs (hold-back), then hold
        # for clock sync (clock.require_sync) what is ready for the journal.
        stages: list[Stage] = [self.clock_service.stamp, tagger, self.clock_service.gate]
        engine = self.markers.engine
        self.pipeline = Pipeline(self.journal, clock, stages, spawn=self.start_task,
                                 urgent=lambda: engine.waiting)
        # Serial meters keep whole frames for the pipeline's cycle (its CPU share); they
        # are fed first whenever a marker comes, the clock's verdict is renewed or a
        # status is read, so the engine and the stamps see what they would at once.
        self.markers.before_engine = self.clock_service.health.before_poll = \
            self.pipeline.catch_up
        self.markers.after_engine = self.pipeline.update_urgency
        self.meters = MeterSet(cfg.meters, clock=clock, on_reading=self.pipeline.on_reading,
                               simulate=simulate, deferral=self.pipeline,
                               unpaced_in_flight=self._in_flight if unpaced else None)
        self.sinks = (Sinks(cfg.influxdb, self.journal, cfg.log, spawn=self.start_task)
                      if cfg.influxdb else None)
        gpio = cfg.gpio
        self.gpio_panel = (
            GpioPanel(gpio, runs_open=self._open_run_names, send=udp_sender(cfg.markers),
                      spawn=self.start_task)
            if gpio is not None and (gpio.status_led_pin is not None
                                     or gpio.button_pin is not None) else None)
        self.power_log = PowerLog(cfg, self.pipeline, power_log_interval_s,
                                  spawn=self.start_task)
        # Optional Prometheus /metrics (SPEC 10), read from the status at scrape time.
        self.prometheus = (
            PrometheusEndpoint(cfg.prometheus, lambda: build_snapshot(
                self.status(), meter_names, self.pipeline.last_reading,
                clock.boottime_ns(), self._last_runs))
            if cfg.prometheus is not None else None)
        self.service = ServiceManager(cfg, self.pipeline, clock, open_runs=self._open_runs,
                                      spawn=self.start_task)

        # Start in this order, stop in the reverse: a component starts after everything
        # downstream of it (what takes or reads its output) and stops before it, so a
        # stop loses nothing. The journal first (everything ends there); the deliveries
        # that read it (they still get the pipeline's drained tail); the pipeline; the
        # clock and the markers, whose stages it runs (markers answer waiting stops);
        # the GPIO panel, a marker client; the meters; the power log; the Prometheus
        # endpoint (it reads them all); the service manager last (READY=1 once all is
        # up, STOPPING=1 first).
        components: list[tuple[str, Component | None]] = [
            ("journal", self.journal), ("sinks", self.sinks), ("pipeline", self.pipeline),
            ("clock", self.clock_service), ("markers", self.markers),
            ("gpio", self.gpio_panel), ("meters", self.meters),
            ("power_log", self.power_log), ("prometheus", self.prometheus),
            ("service", self.service)]
        self.components = [(name, c) for name, c in components if c is not None]

    # -- status --------------------------------------------------------------

    def status(self) -> dict[str, object]:
        self.pipeline.catch_up()
        out: dict[str, object] = {}
        for name, component in self.components:
            try:
                out[name] = component.status()
            except Exception as exc:  # noqa: BLE001 - status must always answer
                out[name] = {"error": str(exc)}
        out["process"] = process_status()
        return out

    def _open_runs(self) -> Sequence[object]:
        return self.markers.engine.open_runs(self.clock.boottime_ns())

    def _open_run_names(self) -> list[str]:
        return sorted({str(r["run"]) for r in self.markers.engine.open_runs()})

    def _in_flight(self) -> int:
        """Readings taken in but not yet journalled, or journalled but not yet delivered
        by the slowest reachable sink (this session): how far behind the whole path is.
        Unpaced simulated meters (load tests) wait while it is large. A sink that is
        down does not count: the journal absorbs that, as it does for real meters."""
        behind = self.pipeline.readings_in - self.pipeline.readings_written
        if self.sinks is not None:
            behind = max(behind, self.sinks.points_behind(self.journal.lines_written))
        return behind

    def start_task(self, name: str, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
        """Run a long-lived task; if it fails, the daemon logs it and stops."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks[name] = task
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
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
        # First: glibc arenas keep whatever they held before this (wattd.allocator).
        fix_mmap_threshold()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.service.request_reload)
        started: list[tuple[str, Component]] = []
        try:
            for name, component in self.components:
                await component.start()
                started.append((name, component))
            log.info("daemon_started", meters=[m.name for m in self.cfg.meters],
                     simulate=self.simulate, journal=str(self.journal.dir))
            await self._stop.wait()
        finally:
            await self._shutdown(started)
        return 1 if self._stop_failed else 0

    def _on_signal(self, sig: int) -> None:
        log.info("signal_received", signal=signal.Signals(sig).name)
        self.request_stop()

    async def _shutdown(self, started: list[tuple[str, Component]]) -> None:
        log.info("daemon_stopping")
        for name, component in reversed(started):
            try:
                await component.stop()
            except Exception:  # the others still stop (and write what they hold)
                self._stop_failed = True
                log.exception("component_stop_failed", component=name)
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
        log.info("daemon_stopped", readings=self.pipeline.readings_written)
        self.service.close()


class PowerLog:
    """Live power in the log, one line per meter every ``interval_s``."""

    def __init__(self, cfg: Config, pipeline: Pipeline, interval_s: float, *,
                 spawn: Spawn) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.interval_s = interval_s
        self._spawn = spawn

    async def start(self) -> None:
        self._spawn("power-log", self._run())

    async def stop(self) -> None:
        """Its task ends with the daemon's."""

    def status(self) -> dict[str, object]:
        return {"interval_s": self.interval_s}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.pipeline.catch_up()
            for meter in self.cfg.meters:
                _log_power(meter.name, self.pipeline.last_reading.get(meter.name))


def _log_power(meter: str, reading: Reading | None) -> None:
    if reading is None:
        log.info("power", meter=meter, state="no reading yet")
        return
    log.info("power", meter=meter, power_w=_round(reading.power_w),
             voltage_v=_round(reading.voltage_v), current_a=_round(reading.current_a, 3),
             energy_j=_round(reading.energy_j), status=reading.status)


def process_status() -> dict[str, object]:
    """Resource use, for `wattd status` and soak tests: asyncio tasks, open file
    descriptors, resident memory (Linux /proc; absent elsewhere)."""
    out: dict[str, object] = {"tasks": len(asyncio.all_tasks())}
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
