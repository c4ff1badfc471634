"""Whole frames read by a thread of the port's own, decoded in the pipeline's cycle.

At a meter's real rate the port wakes the daemon once per frame, and each
wake-up finds the interpreter's caches cold: an event-loop iteration, decoding
the frame and passing its reading through the pipeline's stages then cost
several times what they cost in a batch. A source with a backlog reads its
port in a thread that only polls, reads and stamps (the stamp taken the moment
the read returns, as the event loop's reader did) and keeps the bytes in
order; the event loop is not woken for them. The pipeline feeds the kept reads,
in order and with their read-time stamps, at the start of its next cycle, or
whenever something is about to look at the readings (a marker datagram, the
marker ticker, the clock's verdict changing, a status, shutdown). The decoder
and the stages see exactly the sequence they would have seen at once.

The thread wakes the loop at once (one ``call_soon_threadsafe``) for a read
that is not one whole frame the decoder takes as it is (start-up, garbage, a
lost byte: the loop then decodes it and realigns the tty's VMIN), and for every
read while a stage needs readings now (a stop waiting for its bracketing
reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import structlog

from wattd.clock.timesource import SYSTEM_CLOCK, Clock, clock_reads, settle_pair
from wattd.sources.port_reads import READ_BYTES, gone_reason

STOP_JOIN_S = 2.0
# A catch-up waits this long at most for a read the thread is stamping (microseconds,
# unless the thread was preempted mid-stamp), polling every STAMP_POLL_S.
STAMP_WAIT_S = 0.05
STAMP_POLL_S = 0.0002


class Deferral(Protocol):
    """The pipeline's side (wattd.daemon.pipeline.Pipeline)."""

    # Does a stage need readings at once (a stop waiting for its bracketing
    # reading)? Read by the port's thread per frame: a plain attribute.
    urgent_now: bool

    def register_backlog(self, catch_up: Callable[[], None]) -> None:
        """``catch_up()`` feeds everything kept; the pipeline calls it before each cycle
        and before anything reads what the readings change."""
        ...


FeedFn = Callable[[bytes, int, int], None]


class FrameBacklog:
    """One source's reader thread and its kept reads: ``start``/``stop`` around an
    open port, ``catch_up`` (event-loop thread) to feed what was read."""

    def __init__(self, feed: FeedFn, takes_whole: Callable[[bytes], bool],
                 deferral: Deferral, *, after_catch_up: Callable[[], None] | None = None,
                 name: str = "meter") -> None:
        self._feed = feed
        self._takes_whole = takes_whole
        self._deferral = deferral
        self._clock: Clock = SYSTEM_CLOCK
        self._after = after_catch_up
        self.name = name
        # (bytes, realtime, boottime, realtime): the read and its bracketed clock reads
        self._frames: deque[tuple[bytes, int, int, int]] = deque()
        # Set by the thread from a read's stamp to its keeping: a catch-up takes every
        # read stamped before it began, also one the thread had not kept yet (a flag,
        # not a lock: the thread's per-frame work is its CPU share).
        self._stamping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_w: int | None = None
        self._wake_pending = False
        self.wakes = 0  # loop wake-ups asked for by the thread
        deferral.register_backlog(self.catch_up)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, fd: int, clock: Clock, on_gone: Callable[[str], None]) -> None:
        """Read ``fd`` in a thread until ``stop()``; a failed read or end of file calls
        ``on_gone(reason)`` in the event loop and ends the thread."""
        self._loop = asyncio.get_running_loop()
        self._clock = clock
        stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._read, args=(fd, clock, on_gone, stop_r),
                                        name=f"wattd-read-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread (before the port's fd is closed: its number must not be
        reused under a thread still polling it)."""
        thread, self._thread = self._thread, None
        stop_w, self._stop_w = self._stop_w, None
        if stop_w is not None:
            with contextlib.suppress(OSError):
                os.write(stop_w, b"\0")
        if thread is not None:
            thread.join(STOP_JOIN_S)
        if stop_w is not None:
            os.close(stop_w)

    def _read(self, fd: int, clock: Clock, on_gone: Callable[[str], None],
              stop_r: int) -> None:
        """The thread: poll, read, stamp, keep; nothing else runs here (the stamp's
        realtime - boottime offset rule is applied in ``catch_up``: settle_pair)."""
        loop = self._loop
        assert loop is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(stop_r, select.POLLIN)
        read, keep, takes_whole, deferral = os.read, self._frames.append, \
            self._takes_whole, self._deferral
        realtime, boottime = clock_reads(clock)
        reason = ""
        try:
            while True:
                events = poller.poll()
                if ((len(events) != 1 or events[0][0] != fd)
                        and any(ready == stop_r for ready, _ in events)):
                    return
                try:
                    data = read(fd, READ_BYTES)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    reason = gone_reason(exc)
                    return
                if not data:
                    reason = "end of file"
                    return
                self._stamping = True
                keep((data, realtime(), boottime(), realtime()))
                self._stamping = False
                if deferral.urgent_now or not takes_whole(data):
                    self._wake()
        except Exception as exc:  # noqa: BLE001 - a bug here must end in a reconnect, not silence
            reason = f"reader thread failed: {exc!r}"
            structlog.get_logger("wattd.sources").error(
                "meter reader thread failed", meter=self.name, error=repr(exc))
        finally:
            self._stamping = False
            os.close(stop_r)
            if reason:
                self._wake()
                with contextlib.suppress(RuntimeError):  # a closed loop: the daemon is gone
                    loop.call_soon_threadsafe(on_gone, reason)

    def _wake(self) -> None:
        """From the thread: have the loop feed what was read, once per batch."""
        if self._wake_pending or self._loop is None:
            return
        self._wake_pending = True
        self.wakes += 1
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.catch_up)

    def catch_up(self) -> None:
        """In the event loop: feed every kept read, oldest first."""
        self._wake_pending = False
        if self._stamping:
            self._wait_stamped()
        frames = self._frames
        if not frames:
            return
        feed, clock = self._feed, self._clock
        while frames:  # popleft, not a copy and a clear: the thread may keep meanwhile
            data, rt1, boot, rt2 = frames.popleft()
            feed(data, *settle_pair(clock, rt1, boot, rt2))
        if self._after is not None:
            self._after()

    def _wait_stamped(self) -> None:
        """A read is being stamped (the thread lost the interpreter mid-stamp): let it
        be kept, for at most STAMP_WAIT_S."""
        deadline = time.monotonic() + STAMP_WAIT_S
        while self._stamping and time.monotonic() < deadline:
            time.sleep(STAMP_POLL_S)

    def __len__(self) -> int:
        return len(self._frames)
