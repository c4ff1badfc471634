"""systemd watchdog: ping only while the daemon really makes progress.

systemd (``WatchdogSec=``) passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``)
and restarts the service when no ``WATCHDOG=1`` arrives within that time.
Pinging from a timer alone would prove nothing but that a timer runs, so:

- the ping is sent from a coroutine on the daemon's event loop, every half
  interval: a blocked loop sends nothing;
- every long-lived pipeline task registers a :class:`Heartbeat` and calls
  ``beat()`` each time round its loop (or is watched through a progress
  counter it bumps anyway, :meth:`Watchdog.watch`) (tasks that wait for outside events wait
  with a timeout, so they beat even when idle); a task whose heartbeat is
  older than its ``max_silence_s``, or that has ended, stops the pings, and
  systemd restarts the daemon.

A malformed environment is warned about and leaves the watchdog off: better a
daemon without a watchdog than one that systemd kills in a loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wattd.daemon.notify import Notifier
from wattd.logsetup import get_logger

log = get_logger(__name__)

# A task may be silent this long by default before it counts as stuck; a
# watchdog interval shorter than this uses the interval itself.
DEFAULT_MAX_SILENCE_S = 10.0


def watchdog_interval_us(environ: Mapping[str, str] | None = None,
                         pid: int | None = None) -> int | None:
    """The watchdog interval asked for by systemd, or None (off, or malformed: warned)."""
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("watchdog_usec_malformed", WATCHDOG_USEC=raw,
                    effect="systemd watchdog disabled")
        return None
    raw_pid = env.get("WATCHDOG_PID", "")
    if raw_pid:
        try:
            target = int(raw_pid)
        except ValueError:
            log.warning("watchdog_pid_malformed", WATCHDOG_PID=raw_pid,
                        effect="systemd watchdog disabled")
            return None
        own = os.getpid() if pid is None else pid
        if target != own:
            # The watchdog belongs to another process (we were started by it): not ours.
            log.info("watchdog_not_for_this_process", WATCHDOG_PID=target, pid=own)
            return None
    return usec


@dataclass(slots=True, eq=False)
class Heartbeat:
    """One pipeline task's proof of progress."""

    name: str
    max_silence_s: float
    clock: Callable[[], float] = time.monotonic
    beats: int = 0
    last_beat: float = field(default=0.0)
    task: asyncio.Task[Any] | None = None
    # Alternative to beat(): a counter the task bumps anyway; a change counts as a beat.
    progress: Callable[[], int] | None = None
    last_progress: int | None = None

    def __post_init__(self) -> None:
        self.last_beat = self.clock()
        if self.progress is not None:
            self.last_progress = self.progress()

    def beat(self) -> None:
        self.beats += 1
        self.last_beat = self.clock()

    def silence_s(self, now: float) -> float:
        return max(0.0, now - self.last_beat)

    def problem(self, now: float) -> str | None:
        """Why this task counts as stuck, or None when it is healthy."""
        if self.task is not None and self.task.done():
            return "ended"
        if self.progress is not None:
            value = self.progress()
            if value != self.last_progress:
                self.last_progress = value
                self.last_beat = now
        silence = self.silence_s(now)
        if silence > self.max_silence_s:
            return f"no progress for {silence:.1f} s"
        return None


class Watchdog:
    """Pings systemd's watchdog while the loop and every registered task progress."""

    def __init__(self, notifier: Notifier, interval_us: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.interval_us = interval_us
        self.clock = clock
        self.heartbeats: dict[str, Heartbeat] = {}
        self.pings = 0
        self.checks = 0
        self.stalled: dict[str, str] = {}
        # Set while pings are withheld; tests and the status line look at it.
        self.stalled_event = asyncio.Event()
        self._check_event = asyncio.Event()

    @classmethod
    def from_env(cls, notifier: Notifier,
                 environ: Mapping[str, str] | None = None) -> Watchdog:
        return cls(notifier, watchdog_interval_us(environ))

    @property
    def enabled(self) -> bool:
        return self.interval_us is not None and self.notifier.enabled

    @property
    def ping_period_s(self) -> float | None:
        return None if self.interval_us is None else self.interval_us / 2e6

    def default_max_silence_s(self) -> float:
        if self.interval_us is None:
            return DEFAULT_MAX_SILENCE_S
        return min(DEFAULT_MAX_SILENCE_S, self.interval_us / 1e6)

    def register(self, name: str, *, max_silence_s: float | None = None,
                 task: asyncio.Task[Any] | None = None) -> Heartbeat:
        """A heartbeat for a long-lived task; call ``beat()`` every time round its loop."""
        silence = self.default_max_silence_s() if max_silence_s is None else max_silence_s
        hb = Heartbeat(name, silence, self.clock, task=task)
        self.heartbeats[name] = hb
        return hb

    def watch(self, name: str, progress: Callable[[], int], *,
              max_silence_s: float | None = None,
              task: asyncio.Task[Any] | None = None) -> Heartbeat:
        """Watch a task through a progress counter it bumps every time round its loop."""
        silence = self.default_max_silence_s() if max_silence_s is None else max_silence_s
        hb = Heartbeat(name, silence, self.clock, task=task, progress=progress)
        self.heartbeats[name] = hb
        return hb

    def check(self) -> bool:
        """One round: ping if every heartbeat is healthy. True when a ping was due."""
        self.checks += 1
        now = self.clock()
        problems = {name: p for name, hb in self.heartbeats.items()
                    if (p := hb.problem(now)) is not None}
        if problems:
            if problems.keys() != self.stalled.keys():
                log.error("watchdog_withheld", stalled=problems,
                          effect="no WATCHDOG=1 sent; systemd will restart the daemon"
                          if self.enabled else "no systemd watchdog configured")
            self.stalled = problems
            self.stalled_event.set()
            return False
        if self.stalled:
            log.warning("watchdog_resumed", recovered=sorted(self.stalled))
            self.stalled = {}
            self.stalled_event.clear()
        if self.enabled:
            self.notifier.watchdog()
            self.pings += 1
        return True

    async def run(self) -> None:
        """Check and ping every half interval until cancelled (returns at once when off)."""
        period = self.ping_period_s
        if period is None or not self.enabled:
            return
        log.info("watchdog_enabled", interval_s=self.interval_us / 1e6 if self.interval_us
                 else None, ping_period_s=period, tasks=sorted(self.heartbeats))
        while True:
            self.check()
            self._check_event.set()
            self._check_event.clear()
            await asyncio.sleep(period)

    async def wait_checks(self, n: int) -> None:
        """Wait until ``n`` more checks have run (tests)."""
        target = self.checks + n
        while self.checks < target:
            await self._check_event.wait()

    def summary(self) -> str:
        if self.stalled:
            return "watchdog withheld: " + ", ".join(f"{k} {v}" for k, v in self.stalled.items())
        return ""

    def status(self) -> dict[str, Any]:
        return {"enabled": self.enabled,
                "interval_s": None if self.interval_us is None else self.interval_us / 1e6,
                "pings": self.pings,
                "tasks": {name: {"beats": hb.beats,
                                 "silence_s": round(hb.silence_s(self.clock()), 3)}
                          for name, hb in self.heartbeats.items()},
                "stalled": dict(self.stalled)}
