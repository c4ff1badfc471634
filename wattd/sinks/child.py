"""One sink's delivery loop in its own process: ``python -m wattd.sinks.child``.

The daemon (``wattd.sinks.process``) starts one per ``influxdb`` entry. Delivery
reads the journal files and the sink's cursor file, both on disk, so the only
things shared with the daemon are those files and two pipes:

- ``$WATTD_SINK_INIT``, from the daemon: JSON with the sink's config (file
  names of secrets, never secrets), the journal directory, logging, the status
  pipe's descriptor and the daemon's pid.
- stdin, from the daemon: ``w`` lines (the journal grew) and one
  ``s <timeout_s>`` line (deliver what can be delivered within the bound, then
  exit). End of file means the daemon
  is gone: stop at once (the cursor never passed anything unacknowledged).
- the status pipe, to the daemon: JSON lines with the delivery's counters and
  cursor, written when they change (at most every ``STATUS_INTERVAL_S``) and
  once more at exit. Non-blocking: a daemon that does not read loses lines, and
  the child never waits for it.

Logs go to the inherited stdout, like the daemon's own (one journald stream).
The process dies with the daemon (``PR_SET_PDEATHSIG``), ignores the terminal's
and systemd's SIGINT/SIGTERM (the daemon stops it in order, after draining the
pipeline into the journal), and holds an exclusive lock on its cursor so two
deliveries never run on one cursor (a restarted daemon's child waits for its
killed predecessor).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from wattd.allocator import fix_mmap_threshold
from wattd.config import InfluxConfig
from wattd.journal.cursor import CursorStore
from wattd.logsetup import get_logger, setup_logging
from wattd.sinks import make_sink
from wattd.sinks.delivery import Delivery

log = get_logger("wattd.sinks")

STATUS_INTERVAL_S = 0.25
LOCK_POLL_S = 0.1
PR_SET_PDEATHSIG = 1
INIT_ENV = "WATTD_SINK_INIT"


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the daemon dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the daemon died before the line above
        os._exit(1)


def _open_lock(directory: Path, name: str) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    return os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


async def take_cursor_lock(directory: Path, name: str) -> int:
    """An exclusive lock on the sink's cursor, held for the life of the process."""
    fd = _open_lock(directory, name)
    waited = 0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waited == round(2 / LOCK_POLL_S):
                log.warning("delivery_waiting_for_cursor_lock", sink=name,
                            hint="another delivery process holds this sink's cursor")
            waited += 1
            await asyncio.sleep(LOCK_POLL_S)
        else:
            return fd


class StatusPipe:
    """Status lines to the daemon; written only when they changed, never blocking."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._last: str | None = None

    def send(self, delivery: Delivery) -> None:
        line = json.dumps(delivery.report(), separators=(",", ":"))
        if line == self._last:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self.fd, line.encode() + b"\n")
            self._last = line

    async def report(self, delivery: Delivery) -> None:
        while True:
            self.send(delivery)
            await asyncio.sleep(STATUS_INTERVAL_S)


async def serve(cfg: InfluxConfig, journal_dir: str, status_fd: int) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cursors = CursorStore(journal_dir)
    lock_fd = await take_cursor_lock(cursors.dir, cfg.sink_name)
    data_event = asyncio.Event()
    delivery = Delivery(make_sink(cfg), journal_dir, cursors=cursors, name=cfg.sink_name,
                        data_event=data_event, batch_size=cfg.batch_size,
                        flush_interval_s=cfg.flush_interval_s)
    status = StatusPipe(status_fd)
    delivery.start()
    reporter = asyncio.ensure_future(status.report(delivery))
    timeout_s = 0.0
    try:
        while True:
            line = await reader.readline()
            if not line:
                log.warning("delivery_parent_gone", sink=cfg.sink_name)
                break  # stop at once: the cursor holds what was acknowledged
            if line.startswith(b"w"):
                data_event.set()
            elif line.startswith(b"s"):
                with contextlib.suppress(ValueError, IndexError):
                    timeout_s = float(line.split()[1])
                break
        await delivery.stop(timeout_s)
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        status.send(delivery)
        os.close(lock_fd)
    return 0


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    init: dict[str, Any] = json.loads(os.environ.pop(INIT_ENV))
    die_with_parent(int(init["parent_pid"]))
    # Like the daemon: 1 MiB journal-read buffers freed in worker threads must go
    # back to the system, not stay in per-thread malloc arenas for months.
    fix_mmap_threshold()
    setup_logging(init["log"]["format"], init["log"]["level"])
    cfg = InfluxConfig(**init["influx"])
    return asyncio.run(serve(cfg, str(init["journal_dir"]), int(init["status_fd"])))


if __name__ == "__main__":
    sys.exit(main())
