"""The daemon as a systemd service: readiness, watchdog, status line, reload, stop.

The daemon calls four things, all harmless outside systemd:

- :meth:`ServiceManager.start` once every other component has started (the
  journal is open, the marker endpoints are bound; meters may still be
  connecting): ``READY=1``, then the watchdog and the ``STATUS=`` line every
  few seconds;
- :meth:`ServiceManager.request_reload` from the SIGHUP handler:
  ``RELOADING=1``, re-read the config, ``READY=1``;
- :meth:`ServiceManager.stop` first when a stop is requested: ``STOPPING=1``
  (the watchdog keeps pinging while the rest drains);
- :meth:`ServiceManager.close` at the very end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence

from wattd.clock.timesource import Clock
from wattd.config import Config
from wattd.daemon.component import Spawn
from wattd.daemon.notify import Notifier
from wattd.daemon.pipeline import Pipeline
from wattd.daemon.reload import Reloader, ReloadResult
from wattd.daemon.watchdog import Watchdog
from wattd.logsetup import get_logger

log = get_logger(__name__)

STATUS_PERIOD_S = 5.0


def _age(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def status_line(meters: Sequence[str], pipeline: Pipeline, now_boot_ns: int,
                open_runs: Sequence[object] | None, watchdog: Watchdog | None = None) -> str:
    """One line for ``systemctl status``: meters with reading age, runs, journal."""
    parts = []
    shown = []
    for name in meters:
        reading = pipeline.last_reading.get(name)
        if reading is None:
            shown.append(f"{name} waiting")
        else:
            power = "?" if reading.power_w is None else f"{reading.power_w:.1f} W"
            age = max(0, now_boot_ns - reading.t_boot_ns) / 1e9
            shown.append(f"{name} {power} ({_age(age)} ago)")
    parts.append("meters: " + (", ".join(shown) or "none"))
    if open_runs is not None:
        parts.append("open runs: " + (", ".join(map(str, open_runs)) or "none"))
    parts.append(f"written {pipeline.readings_written} readings")
    if watchdog is not None and watchdog.stalled:
        parts.append(watchdog.summary())
    return "; ".join(parts)


class ServiceManager:
    """sd_notify, watchdog and SIGHUP reload for the daemon: its last component.

    ``open_runs`` gives the marker service's open runs for the status line
    (None: no marker service to ask); the watchdog watches ``pipeline``'s
    writer task."""

    def __init__(self, cfg: Config, pipeline: Pipeline, clock: Clock, *,
                 open_runs: Callable[[], Sequence[object] | None], spawn: Spawn,
                 environ: Mapping[str, str] | None = None,
                 status_period_s: float = STATUS_PERIOD_S) -> None:
        env = os.environ if environ is None else environ
        self.cfg = cfg
        self.pipeline = pipeline
        self.clock = clock
        self.open_runs = open_runs
        self._spawn = spawn
        self.notifier = Notifier.from_env(env)
        self.watchdog = Watchdog.from_env(self.notifier, env)
        config_path = None if cfg.path == "<config>" else cfg.path
        self.reloader = Reloader(cfg, config_path, self.notifier)
        self.reloader.status_text = self.status_text
        self.status_period_s = status_period_s
        self.ready_sent = False
        self._reload_task: asyncio.Task[ReloadResult] | None = None

    def status_text(self) -> str:
        try:
            runs = self.open_runs()
        except Exception:  # the status line is advice: it never stops the daemon
            log.exception("status_open_runs_failed")
            runs = None
        return status_line([m.name for m in self.cfg.meters], self.pipeline,
                           self.clock.boottime_ns(), runs, self.watchdog)

    async def start(self) -> None:
        """Everything else is up: tell systemd, start the watchdog and status line."""
        pipeline = self.pipeline
        self.watchdog.watch("pipeline", lambda: pipeline.progress, task=pipeline.writer)
        self.ready_sent = self.notifier.ready(self.status_text())
        if self.watchdog.enabled:
            self._spawn("watchdog", self.watchdog.run())
        if self.notifier.enabled:
            self._spawn("status-line", self._status_loop())

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

    async def stop(self) -> None:
        self.notifier.stopping("stopping: draining the pipeline into the journal")

    def close(self) -> None:
        self.notifier.close()

    def status(self) -> dict[str, object]:
        return {"notify": self.notifier.stats(), "watchdog": self.watchdog.status(),
                "reload": self.reloader.status()}
