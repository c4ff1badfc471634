"""The daemon as a systemd service: readiness, watchdog, status line, reload, stop.

The daemon calls four things, all harmless outside systemd:

- :meth:`ServiceManager.started` once the journal is open and the marker
  endpoints are bound (meters may still be connecting): ``READY=1``, then the
  watchdog and the ``STATUS=`` line every few seconds;
- :meth:`ServiceManager.request_reload` from the SIGHUP handler:
  ``RELOADING=1``, re-read the config, ``READY=1``;
- :meth:`ServiceManager.stopping` when a stop is requested: ``STOPPING=1``;
- :meth:`ServiceManager.close` at the very end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wattd.daemon.notify import Notifier
from wattd.daemon.reload import Reloader, ReloadResult
from wattd.daemon.watchdog import Watchdog
from wattd.logsetup import get_logger

if TYPE_CHECKING:
    from wattd.daemon.app import Daemon

log = get_logger(__name__)

STATUS_PERIOD_S = 5.0


def _age(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def status_line(daemon: Daemon, watchdog: Watchdog | None = None) -> str:
    """One line for ``systemctl status``: meters with reading age, runs, journal."""
    now_boot = daemon.clock.boottime_ns()
    parts = []
    meters = []
    for meter in daemon.cfg.meters:
        reading = daemon.pipeline.last_reading.get(meter.name)
        if reading is None:
            meters.append(f"{meter.name} waiting")
        else:
            power = "?" if reading.power_w is None else f"{reading.power_w:.1f} W"
            age = max(0, now_boot - reading.t_boot_ns) / 1e9
            meters.append(f"{meter.name} {power} ({_age(age)} ago)")
    parts.append("meters: " + (", ".join(meters) or "none"))
    status = daemon.status()
    markers = status.get("markers")
    if isinstance(markers, dict):
        runs = markers.get("open_runs", markers.get("runs"))
        if isinstance(runs, dict | list):
            parts.append("open runs: " + (", ".join(map(str, runs)) or "none"))
    parts.append(f"written {daemon.pipeline.readings_written} readings")
    if watchdog is not None and watchdog.stalled:
        parts.append(watchdog.summary())
    return "; ".join(parts)


class ServiceManager:
    """sd_notify, watchdog and SIGHUP reload for one :class:`Daemon`."""

    def __init__(self, daemon: Daemon, environ: Mapping[str, str] | None = None,
                 status_period_s: float = STATUS_PERIOD_S) -> None:
        env = os.environ if environ is None else environ
        self.daemon = daemon
        self.notifier = Notifier.from_env(env)
        self.watchdog = Watchdog.from_env(self.notifier, env)
        config_path = None if daemon.cfg.path == "<config>" else daemon.cfg.path
        self.reloader = Reloader(daemon.cfg, config_path, self.notifier)
        self.reloader.status_text = self.status_text
        self.status_period_s = status_period_s
        self.ready_sent = False
        self._reload_task: asyncio.Task[ReloadResult] | None = None
        daemon.add_status("service", self.status)

    def status_text(self) -> str:
        return status_line(self.daemon, self.watchdog)

    async def started(self) -> None:
        """Journal open, markers bound: tell systemd, start the watchdog and status line."""
        pipeline_task = self.daemon.tasks.get("pipeline")
        self.watchdog.watch("pipeline", lambda: self.daemon.pipeline.progress,
                            task=pipeline_task)
        self.ready_sent = self.notifier.ready(self.status_text())
        if self.watchdog.enabled:
            self.daemon.start_task("watchdog", self.watchdog.run())
        if self.notifier.enabled:
            self.daemon.start_task("status-line", self._status_loop())

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_period_s)
            self.notifier.status(self.status_text())

    def request_reload(self) -> None:
        """SIGHUP: reload in a task (signal handlers must not block)."""
        if self._reload_task is not None and not self._reload_task.done():
            log.info("config_reload_already_running")
            return
        self._reload_task = asyncio.get_running_loop().create_task(self.reloader.reload())

    async def wait_reload(self) -> ReloadResult | None:
        return None if self._reload_task is None else await self._reload_task

    def stopping(self) -> None:
        self.notifier.stopping("stopping: draining the pipeline into the journal")

    def close(self) -> None:
        self.notifier.close()

    def status(self) -> dict[str, Any]:
        return {"notify": self.notifier.stats(), "watchdog": self.watchdog.status(),
                "reload": self.reloader.status()}
