"""Delivery of the journal to one database sink, at least once (SPEC 4).

Invariant: the sink's cursor (in the journal's CursorStore) is advanced only
after the database acknowledged every line before it, or after a line was
refused on its own (400/422, isolated by bisecting) and counted as dropped.
So a crash resends at most the one batch that was in flight; a database that
is down only makes the backlog grow in the journal.

Failures: network errors, timeouts, 5xx and 429 are retried with capped
exponential backoff with jitter (Retry-After honoured); 401/403 and other 4xx
(unknown database) are logged as errors and retried slowly, re-reading the
credentials each time; 400/413/422 bisect the batch down to the refused lines.

Per-line cost: batches are blocks of lines (`wattd.sinks.batches`) that the
sinks send as one body, so no Python work is done per line on the normal path.
A batch is split into lines only when the database refuses it (the 400/422
bisection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wattd.backoff import Backoff
from wattd.journal.cursor import CursorStore
from wattd.journal.segments import Position
from wattd.logsetup import get_logger
from wattd.sinks.base import (
    Sink,
    SinkAuthError,
    SinkConfigError,
    SinkRejectedError,
    SinkUnavailableError,
)
from wattd.sinks.batches import MAX_BATCH_BYTES, BatchReader, split_lines
from wattd.sinks.status import sink_status, status_backlog_bytes

log = get_logger("wattd.sinks")

# Where a new sink starts: before every segment (the whole journal is delivered).
START = Position(0, 0)
RESTART_MAX_S = 60.0  # longest pause before the loop restarts after an internal error


class _StoppingError(Exception):
    """Internal: stop was requested while retrying; the batch stays in the journal."""


class Delivery:
    """Moves lines from the journal to one sink with its own cursor.

    `run()` until `stop()`. `status()` is cheap enough for `wattd status`.
    """

    def __init__(self, sink: Sink, journal_dir: str | os.PathLike[str], *,
                 cursors: CursorStore | None = None, name: str | None = None,
                 data_event: asyncio.Event | None = None, batch_size: int = 5000,
                 flush_interval_s: float = 1.0, backoff: Backoff | None = None,
                 auth_retry_s: float = 60.0, poll_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.dir = Path(journal_dir)
        self.cursors = cursors or CursorStore(self.dir)
        self.name = name or sink.name
        self.data_event = data_event
        self.batch_size = max(1, batch_size)
        self.flush_interval_s = max(0.0, flush_interval_s)
        self.backoff = backoff or Backoff()
        self.auth_retry_s = auth_retry_s
        # The data event is shared by every sink and may be cleared by another one
        # just after it was set; polling bounds how late such a wake-up can be.
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Blocks of lines read but not yet sent, their line count, and the journal
        # position after them.
        self._reader = BatchReader(self.dir)
        self._buf: list[bytes] = []
        self._buf_lines = 0
        self._buf_bytes = 0
        self._buf_end: Position = START
        self._buf_since: float | None = None
        self._cursor: Position = START
        # Counters and state for `wattd status`.
        self.delivered_points = 0
        self.delivered_batches = 0
        self.dropped_points = 0
        self.dropped_by_reason: Counter[str] = Counter()
        self.last_dropped_line: str | None = None
        self.retries = 0
        self.state = "starting"
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.retry_in_s: float | None = None  # the last delay chosen (Retry-After honoured)
        self._avg_line_bytes = 150.0
        self._ahead: ThreadPoolExecutor | None = None  # reads the next batch of a backlog

    def _ahead_pool(self) -> ThreadPoolExecutor:
        if self._ahead is None:
            self._ahead = ThreadPoolExecutor(max_workers=1,
                                             thread_name_prefix=f"read-{self.name}")
        return self._ahead

    @property
    def cursor(self) -> Position:
        """The journal position up to which the database acknowledged."""
        return self._cursor


    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self.run(),
                                                            name=f"delivery-{self.name}")
        return self._task

    def attach(self, task: asyncio.Task[None] | None) -> None:
        """Adopt a task running `run()` that someone else created (the daemon)."""
        self._task = task or self._task

    async def run(self) -> None:
        """Deliver until `stop()`. An unexpected error (a bug, an unreadable journal
        file) is logged and the loop restarts from the cursor: never a crash."""
        restart = Backoff(max(0.001, min(self.auth_retry_s, 5.0)), RESTART_MAX_S, jitter=0.0)
        while True:
            started = self._clock()
            try:
                await self._run_once()
            except Exception:  # delivery must outlive its own bugs (logged, restarted)
                log.exception("delivery_failed", sink=self.name)
                self.state = "error"
                self.last_error = "internal error (see log)"
                self.last_error_at = time.time()
                self._reader.close()
                self._buf, self._buf_lines, self._buf_bytes, self._buf_since = [], 0, 0, None
                await asyncio.sleep(restart.next_restart_delay(self._clock() - started))
                if self._stopping:
                    return
                continue
            return

    async def _run_once(self) -> None:
        loaded = self.cursors.load(self.name)
        if loaded is None:
            # Register the cursor now: the journal's size bound treats data after
            # a registered cursor as undelivered.
            loaded = START
            await asyncio.to_thread(self.cursors.save, self.name, loaded)
        self._cursor = self._buf_end = loaded
        self.state = "running"
        log.info("delivery_start", sink=self.name, url=self.sink.url,
                 cursor=list(loaded), backlog_bytes=self.backlog_bytes())
        try:
            await self._loop()
        except _StoppingError:
            pass
        finally:
            self._reader.close()
            if self._ahead is not None:
                self._ahead.shutdown(wait=False)
                self._ahead = None
        self.state = "stopped"
        log.info("delivery_stop", sink=self.name, delivered=self.delivered_points,
                 dropped=self.dropped_points, backlog_bytes=self.backlog_bytes())

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within `timeout_s`, then stop. Anything
        undelivered stays in the journal; the cursor never passes it."""
        self._stopping = True
        self._wake.set()
        task = self._task
        try:
            if task is not None and not task.done():
                await self._await_bounded(task, timeout_s)
        finally:
            await self.sink.close()

    async def _await_bounded(self, task: asyncio.Task[None], timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning("delivery_stop_timeout", sink=self.name, timeout_s=timeout_s,
                        backlog_bytes=self.backlog_bytes())


    async def _loop(self) -> None:
        while True:
            if self.data_event is not None:
                self.data_event.clear()  # cleared before reading: an append after it re-sets it
            await self._top_up()
            now = self._clock()
            due = bool(self._buf) and (
                self._buf_lines >= self.batch_size or self._buf_bytes >= MAX_BATCH_BYTES
                or self._stopping
                or (self._buf_since is not None
                    and now - self._buf_since >= self.flush_interval_s))
            if due:
                batch, count, end = self._buf, self._buf_lines, self._buf_end
                self._buf, self._buf_lines, self._buf_bytes, self._buf_since = [], 0, 0, None
                if await self._cycle(batch, count, end):
                    continue
                # Read the next batch while this one is on the wire (still one in flight).
                sent, _ = await asyncio.gather(self._deliver(batch, count), self._top_up(),
                                               return_exceptions=True)
                if isinstance(sent, BaseException):
                    raise sent
                await asyncio.to_thread(self.cursors.save, self.name, end)
                self._cursor = end
                continue
            if self._stopping and not self._buf:
                return
            timeout = self.poll_interval_s
            if self._buf_since is not None:
                timeout = min(timeout, max(0.0, self._buf_since + self.flush_interval_s - now))
            await self._wait(timeout)

    async def _wait(self, timeout_s: float) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait())]
        if self.data_event is not None:
            waiters.append(asyncio.ensure_future(self.data_event.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


    async def _cycle(self, batch: list[bytes], count: int, end: Position) -> bool:
        """The normal path in one worker job (one event-loop hop per batch, however
        busy the loop is): send, and once acknowledged save the cursor and read the
        next batch. False if the sink has no blocking write or the send failed:
        the caller then delivers the batch with retries and bisection."""
        post: Callable[[list[bytes]], None] | None = getattr(self.sink, "write_blocking", None)
        if post is None:
            return False
        after = self._buf_end
        pull = self._reader.pull
        # A full batch means a backlog: the next one is read (and gunzipped) while this
        # one is on the wire, in the reading thread (the database is the bottleneck).
        ahead_pool = self._ahead_pool() if count >= self.batch_size else None

        def job() -> tuple[list[bytes], int, Position, int]:
            ahead = None if ahead_pool is None else ahead_pool.submit(pull, self.batch_size,
                                                                       after)
            try:
                post(batch)
            except BaseException:
                if ahead is not None:
                    # Not acknowledged: the reader went past what the retry path asks for.
                    with contextlib.suppress(Exception):
                        ahead.result()
                    self._reader.close()
                raise
            self.cursors.save(self.name, end)
            return pull(self.batch_size, after) if ahead is None else ahead.result()

        try:
            pulled = await asyncio.to_thread(job)
        except (SinkRejectedError, SinkAuthError, SinkConfigError, SinkUnavailableError):
            return False  # not acknowledged: the cursor did not move
        self._cursor = end
        self.delivered_points += count
        self.delivered_batches += 1
        self._success()
        self._add(*pulled)
        return True

    async def _top_up(self) -> None:
        want = self.batch_size - self._buf_lines
        if want <= 0 or self._buf_bytes >= MAX_BATCH_BYTES:
            return
        self._add(*await asyncio.to_thread(self._reader.pull, want, self._buf_end))

    def _add(self, blocks: list[bytes], count: int, end: Position, nbytes: int) -> None:
        if count:
            if not self._buf:
                self._buf_since = self._clock()
            self._buf.extend(blocks)
            self._buf_lines += count
            self._buf_bytes += nbytes
            self._buf_end = end
            self._avg_line_bytes = 0.9 * self._avg_line_bytes + 0.1 * (nbytes / count)


    async def _deliver(self, batch: list[bytes], count: int) -> None:
        """Deliver a batch (blocks holding `count` lines): retry transient failures,
        bisect refused batches down to the refused lines (dropped and counted).
        Returns when every line is either acknowledged or dropped; raises
        _StoppingError if asked to stop first."""
        try:
            await self._send_retrying(batch)
        except SinkRejectedError as err:
            if count == 1:
                self._drop(batch[0], err)
            else:
                await self._bisect(split_lines(batch), err)
        else:
            self.delivered_points += count
        self.delivered_batches += 1

    async def _bisect(self, lines: list[bytes], err: SinkRejectedError) -> None:
        """`lines` were refused together: halve until each refused line is alone."""
        log.warning("sink_batch_rejected_bisecting", sink=self.name, lines=len(lines),
                    status=err.status, error=str(err))
        mid = len(lines) // 2
        stack = [lines[mid:], lines[:mid]]  # the first half is popped first: order kept
        while stack:
            part = stack.pop()
            try:
                await self._send_retrying(part)
            except SinkRejectedError as part_err:
                if len(part) == 1:
                    self._drop(part[0], part_err)
                    continue
                mid = len(part) // 2
                log.warning("sink_batch_rejected_bisecting", sink=self.name, lines=len(part),
                            status=part_err.status, error=str(part_err))
                stack.append(part[mid:])
                stack.append(part[:mid])
                continue
            self.delivered_points += len(part)

    async def _send_retrying(self, part: list[bytes]) -> None:
        """Send until acknowledged; SinkRejectedError propagates (the caller bisects)."""
        while True:
            try:
                await self.sink.write(part)
            except SinkRejectedError:
                self._success()  # the database is up and answering
                raise
            except (SinkAuthError, SinkConfigError) as err:
                delay = self.backoff.next_delay(floor_s=self.auth_retry_s)
                kind = "auth_failed" if isinstance(err, SinkAuthError) else "refused"
                self._failure(kind, err, delay)
                await self._sleep_or_stop(delay)
                with contextlib.suppress(Exception):
                    await self.sink.reload_credentials()
                continue
            except SinkUnavailableError as err:
                delay = self.backoff.next_delay(err.retry_after_s)
                self._failure("retrying", err, delay)
                await self._sleep_or_stop(delay)
                continue
            self._success()
            return

    async def _sleep_or_stop(self, delay_s: float) -> None:
        if self._stopping:
            raise _StoppingError
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay_s)
        if self._stopping:
            raise _StoppingError

    def _success(self) -> None:
        if self.state != "running":
            log.info("sink_recovered", sink=self.name, after_retries=self.backoff.attempts)
        self.state = "running"
        self.backoff.reset()
        self.last_success_at = time.time()

    def _failure(self, state: str, err: Exception, delay_s: float) -> None:
        self.retries += 1
        self.retry_in_s = round(delay_s, 3)
        first = self.state != state
        self.state = state
        self.last_error = str(err)
        self.last_error_at = time.time()
        if state == "retrying":
            # Expected while a database is down: one warning per outage, then debug.
            (log.warning if first else log.debug)(
                "sink_unavailable", sink=self.name, error=str(err),
                retry_in_s=round(delay_s, 2), backlog_bytes=self.backlog_bytes())
        else:
            log.error("sink_refused" if state == "refused" else "sink_auth_failed",
                      sink=self.name, error=str(err), retry_in_s=round(delay_s, 2),
                      hint="check username/password_file or token_file and permissions"
                      if state == "auth_failed" else "check database/bucket/org")

    def _drop(self, line: bytes, err: SinkRejectedError) -> None:
        text = line.decode("utf-8", "replace")
        self.dropped_points += 1
        self.dropped_by_reason[err.reason] += 1
        self.last_dropped_line = text[:500]
        log.error("sink_point_dropped", sink=self.name, reason=err.reason, status=err.status,
                  error=str(err), line=text[:500])


    def backlog_bytes(self) -> int:
        return status_backlog_bytes(self.dir, self._cursor)

    def report(self) -> dict[str, Any]:
        """State and counters as plain JSON values: what a delivery process
        sends to the daemon, and what `status()` is made of."""
        return {
            "url": self.sink.url, "state": self.state,
            "cursor": {"segment": self._cursor.segment, "offset": self._cursor.offset},
            "delivered_points": self.delivered_points,
            "delivered_batches": self.delivered_batches,
            "dropped_points": self.dropped_points,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "last_dropped_line": self.last_dropped_line, "retries": self.retries,
            "retry_in_s": self.retry_in_s, "last_error": self.last_error,
            "last_error_at": self.last_error_at, "last_success_at": self.last_success_at,
            "avg_line_bytes": self._avg_line_bytes,
        }

    def status(self) -> dict[str, Any]:
        return sink_status(self.report(), self.backlog_bytes())
