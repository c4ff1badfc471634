"""The daemon's side of a delivery process (``wattd.sinks.child``).

An ``influxdb`` entry with ``delivery: process`` (for high ingest rates; the
default delivers in the daemon, ``wattd.sinks.inprocess``) is delivered by its own
process, so HTTP, TLS and gzip never take the daemon's interpreter lock: the event
loop that stamps readings keeps its core, and a fast database gets the other
one. The process shares only the journal files and the sink's cursor file with
the daemon; the daemon wakes it through a pipe after each journal append, reads
its status lines, restarts it (after a pause, capped) if it dies, and stops it in
order at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import wattd
from wattd.backoff import Backoff
from wattd.config import InfluxConfig, LogConfig
from wattd.journal.cursor import CursorStore
from wattd.journal.segments import Position
from wattd.logsetup import get_logger
from wattd.sinks.child import INIT_ENV
from wattd.sinks.status import sink_status, status_backlog_bytes

log = get_logger("wattd.sinks")

RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
STOP_GRACE_S = 5.0  # beyond the delivery bound: interpreter exit, final status line
# The child imports this very wattd, wherever it was run from.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(wattd.__file__)))
_COUNTERS = ("delivered_points", "delivered_batches", "dropped_points", "retries")


class DeliveryProcess:
    """One sink's delivery, supervised. ``run()`` until ``stop()``; ``status()``
    answers from the last status line and the journal's sizes (no round trip)."""

    def __init__(self, cfg: InfluxConfig, journal_dir: str | os.PathLike[str],
                 log_cfg: LogConfig | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.sink_name
        self.url = cfg.url
        self.dir = Path(journal_dir)
        self.log_cfg = log_cfg or LogConfig()
        self.state = "starting"
        self.pid: int | None = None
        self.restarts = 0
        self._child: dict[str, Any] = {}
        self._base = dict.fromkeys(_COUNTERS, 0)  # counts of the processes before this one
        self._proc: asyncio.subprocess.Process | None = None
        self._status_fd: int | None = None
        self._buf = b""
        self._stopping = False
        self._stop_timeout_s = 0.0
        self._stop_requested = asyncio.Event()  # cuts a restart pause short

    # -- counters the daemon reads (pacing of unpaced simulated meters) ----------

    def _count(self, key: str) -> int:
        return self._base[key] + int(self._child.get(key, 0))

    @property
    def delivered_points(self) -> int:
        return self._count("delivered_points")

    @property
    def dropped_points(self) -> int:
        return self._count("dropped_points")

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Start the process; restart it whenever it dies unasked."""
        backoff = Backoff(RESTART_FIRST_S, RESTART_MAX_S, jitter=0.0)
        while not self._stopping:
            started = time.monotonic()
            code: int | str
            try:
                code = await self._run_child()
            except Exception as exc:  # cannot start it (fork/exec failed): retry, never crash
                log.exception("delivery_process_start_failed", sink=self.name)
                code = f"not started ({exc})"
            if self._stopping:
                break
            self.state = "restarting"
            self.restarts += 1
            pause = backoff.next_restart_delay(time.monotonic() - started)
            self._child["last_error"] = f"delivery process exited with code {code}"
            self._child["last_error_at"] = time.time()
            log.error("delivery_process_exited", sink=self.name, code=code,
                      restart_in_s=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), pause)
        self.state = "stopped"

    async def _run_child(self) -> int:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        env[INIT_ENV] = json.dumps({
            "influx": dataclasses.asdict(self.cfg), "journal_dir": str(self.dir),
            "log": {"format": self.log_cfg.format, "level": self.log_cfg.level},
            "status_fd": write_fd, "parent_pid": os.getpid()})
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wattd.sinks.child", stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,), env=env)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._proc, self.pid = proc, proc.pid
        self._status_fd, self._buf = read_fd, b""
        os.set_blocking(read_fd, False)
        loop = asyncio.get_running_loop()
        loop.add_reader(read_fd, self._read_status)
        self.state = "running" if not self._child else self._child.get("state", "running")
        if self._stopping:  # stop() came while the process was being started
            self._send(f"s {self._stop_timeout_s}\n".encode())
        try:
            code = await proc.wait()
        finally:
            loop.remove_reader(read_fd)
            self._read_status()  # the final line, written just before exit
            os.close(read_fd)
            self._status_fd = None
            self._proc = None
            self._retire_counters()
        return code

    def _retire_counters(self) -> None:
        for key in _COUNTERS:
            self._base[key] += int(self._child.get(key, 0))
            self._child[key] = 0

    def wake(self) -> None:
        """The journal grew (a journal append listener: cheap, never blocks)."""
        self._send(b"w\n")

    def _send(self, data: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            proc.stdin.write(data)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within `timeout_s`, then stop the process.
        Anything undelivered stays in the journal; the cursor never passes it."""
        self._stopping = True
        self._stop_timeout_s = timeout_s
        self._stop_requested.set()
        proc = self._proc
        if proc is None:
            return
        self._send(f"s {timeout_s}\n".encode())
        try:
            await asyncio.wait_for(proc.wait(), timeout_s + STOP_GRACE_S)
        except TimeoutError:
            log.warning("delivery_process_killed", sink=self.name, pid=proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # -- status -----------------------------------------------------------------------

    def _read_status(self) -> None:
        fd = self._status_fd
        if fd is None:
            return
        while True:
            try:
                chunk = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return
            if not chunk:
                break
            self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                status = json.loads(line)
            except ValueError:
                continue
            if isinstance(status, dict):
                self._child = status
                self.state = str(status.get("state", self.state))

    @property
    def cursor(self) -> Position:
        cursor = self._child.get("cursor")
        if cursor is None:
            return CursorStore(self.dir).load(self.name) or Position(0, 0)
        return Position(int(cursor["segment"]), int(cursor["offset"]))

    def backlog_bytes(self) -> int:
        return status_backlog_bytes(self.dir, self.cursor)

    def status(self) -> dict[str, Any]:
        cursor = self.cursor
        report = {**self._child, "url": self.url, "state": self.state,
                  "cursor": {"segment": cursor.segment, "offset": cursor.offset},
                  **{key: self._count(key) for key in _COUNTERS}}
        return {**sink_status(report, self.backlog_bytes()), "pid": self.pid,
                "restarts": self.restarts}
