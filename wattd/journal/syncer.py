"""Readings' fsyncs in a thread of the journal's own, asked for without waiting.

A readings append that is due for its fsync (SPEC 4: at least every
``journal.fsync_interval_s``) hands a duplicate of the segment's descriptor to
this thread and goes on: nothing in the daemon waits for a readings fsync, so
the event loop is not woken when it completes (an executor hop costs a future,
a self-pipe write and a loop wake-up, as much as the fsync's own system call
at a meter's rate). The duplicate keeps the file open until its fsync is done,
whatever happens to the segment meanwhile (rotation, compression). A failed
fsync is reported to the loop (``on_error``), which marks the data dirty again
for the fallback fsync. Durable points (markers, run results) are fsynced by
the journal itself before their append returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable

STOP_JOIN_S = 10.0


class Syncer:
    def __init__(self, fsync: Callable[[int], None],
                 on_error: Callable[[Exception], None]) -> None:
        self._fsync = fsync
        self._on_error = on_error
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.done = 0  # fsyncs completed without error (written by the thread only)
        self.failed = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="wattd-fsync", daemon=True)
        self._thread.start()

    def request(self, fd: int) -> bool:
        """Fsync ``fd``'s file soon; False when it cannot be asked (no thread, or no
        descriptor left to duplicate): the caller fsyncs it itself."""
        if self._thread is None:
            return False
        try:
            dup = os.dup(fd)
        except OSError:
            return False
        self.requests += 1
        self._queue.put(dup)
        return True

    def stop(self) -> None:
        """Let the thread finish what was asked and end (blocking: call it from a
        worker thread, or once the loop has nothing else to do)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(STOP_JOIN_S)

    def _run(self) -> None:
        get, fsync = self._queue.get, self._fsync
        while True:
            fd = get()
            if fd is None:
                return
            try:
                fsync(fd)
            except Exception as exc:  # noqa: BLE001 - any failure: the data is not durable
                self.failed += 1
                if self._loop is not None:
                    with contextlib.suppress(RuntimeError):  # the loop is closed
                        self._loop.call_soon_threadsafe(self._on_error, exc)
            else:
                self.done += 1
            finally:
                os.close(fd)
