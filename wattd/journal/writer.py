"""The journal writer (SPEC 4).

Every point goes here first. Readings are fsynced at least every
``fsync_interval_s``; markers and run results (``durable=True``) at once.
Segments rotate at ``segment_bytes``; closed segments are gzip-compressed in
a worker thread; the directory is kept under ``max_bytes`` (and
``max_age_days``) by deleting the oldest closed segments, counting any
undelivered data that had to go. A torn last line (a crash mid-write) is cut
off on open.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from wattd.config import JournalConfig
from wattd.errors import ConfigError
from wattd.journal.cursor import CursorStore
from wattd.journal.files import cut_torn_tail, gzip_to_tmp, mtime_or, write_all
from wattd.journal.segments import (
    Position,
    SegmentInfo,
    list_segments,
    segment_name,
    split_at_lines,
)
from wattd.journal.syncer import Syncer
from wattd.logsetup import get_logger

log = get_logger("wattd.journal")

FsyncFn = Callable[[int], None]

# Appends up to this size are written from the event loop: copying a few KiB into
# the page cache takes microseconds, less than a worker-thread hop (a futex wake-up,
# a self-pipe write, one more loop wake-up). Bigger writes (a burst after a hold)
# and fsyncs run in threads, so a slow disk stalls those, not the stamping.
INLINE_WRITE_BYTES = 64 * 1024


def _open_segment(path: Path) -> io.FileIO:
    """A segment opened for appending, unbuffered (writes go straight to its fd)."""
    return open(path, "ab", buffering=0)


class Journal:
    def __init__(self, cfg: JournalConfig, *, fsync: FsyncFn = os.fsync,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.dir = Path(cfg.dir)
        self.cursors = CursorStore(self.dir)
        self.data_event = asyncio.Event()
        # Called after every append (cheap and non-blocking: delivery processes
        # are woken through a pipe this way).
        self.append_listeners: list[Callable[[], None]] = []
        self._fsync = fsync
        self._clock = clock
        self._file: io.FileIO | None = None  # the segment being written (unbuffered)
        self._segment = 0
        self._offset = 0
        self._dirty = False
        self._last_fsync = clock()
        self._last_append: float | None = None  # clock() at the previous append
        self._lock = asyncio.Lock()
        # Fsync cadence: an append whose successor is expected after the deadline
        # fsyncs in its own worker-thread hop (write + fsync, see append); this
        # timer is the fallback when appends stop. Cancelled by every fsync, so it
        # never wakes the loop while appends keep coming.
        self._sync_timer: asyncio.TimerHandle | None = None
        self._sync_wanted = asyncio.Event()
        self._fsync_task: asyncio.Task[None] | None = None
        # Readings' fsyncs: asked of a thread without waiting (wattd.journal.syncer).
        self._syncer = Syncer(fsync, self._background_fsync_failed)
        self._last_fsync_done = self._last_fsync  # of the last fsync known to succeed
        self._bg: set[asyncio.Task[None]] = set()
        # Never let one segment take more than a quarter of the bound.
        self._segment_bytes = max(4096, min(cfg.segment_bytes, cfg.max_bytes // 4))
        self.lines_written = 0
        self._fsyncs_awaited = 0
        self.torn_lines_cut = 0
        self.segments_deleted = 0
        self.undelivered_bytes_dropped = 0
        self.write_errors = 0

    async def open(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".wattd-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"journal directory {str(self.dir)!r} is not writable: "
                              f"{exc.strerror}", key="journal.dir") from None
        segments = list_segments(self.dir)
        last = segments[-1] if segments else None
        if last is not None and not last.compressed:
            self._segment = last.number
            self._cut_torn_tail(last.path)
        else:
            self._segment = (last.number + 1) if last else 1
        path = self.dir / segment_name(self._segment)
        self._file = await asyncio.to_thread(_open_segment, path)
        self._offset = path.stat().st_size
        # Plain segments left behind by a crash during compression (and the
        # unfinished copies of that compression, never read).
        for stale in self.dir.glob("*.gz.tmp"):
            stale.unlink(missing_ok=True)
        for info in segments:
            if not info.compressed and info.number != self._segment:
                self._compress_later(info.number)
        self._enforce_bounds()
        self._fsync_task = asyncio.create_task(self._fsync_loop(), name="journal-fsync")
        self._syncer.start()
        log.info("journal_open", dir=str(self.dir), segment=self._segment, offset=self._offset)

    def _cut_torn_tail(self, path: Path) -> None:
        cut = cut_torn_tail(path)
        if cut:
            self.torn_lines_cut += 1
            log.warning("journal_torn_line_skipped", segment=path.name, bytes=cut)

    async def close(self) -> None:
        self._cancel_sync_timer()
        if self._fsync_task is not None:
            self._fsync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fsync_task
            self._fsync_task = None
        async with self._lock:
            if self._file is not None:
                await self._sync_now()
                self._file.close()
                self._file = None
        await asyncio.get_running_loop().run_in_executor(None, self._syncer.stop)
        if self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)
        log.info("journal_closed", lines_written=self.lines_written)


    def end_position(self) -> Position:
        return Position(self._segment, self._offset)

    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None:
        """Append complete points (no trailing newlines in ``lines``)."""
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        async with self._lock:
            if self._file is None:
                raise RuntimeError("journal is not open")
            # A big batch (a burst, readings released after a wait) is cut at line ends
            # so that no segment outgrows segment_bytes by more than one line: the size
            # bound budgets whole segments (one oversized segment was dropped whole).
            pieces = split_at_lines(data, self._segment_bytes - self._offset,
                                    self._segment_bytes)
            sync = durable or self._fsync_due()
            last = len(pieces) - 1
            for i, piece in enumerate(pieces):
                await self._write(piece, len(lines), sync=sync and i == last,
                                  durable=durable)
                if self._offset >= self._segment_bytes:
                    await self._rotate()
            self._appended(len(lines))

    def append_now(self, lines: Sequence[str]) -> bool:
        """Append readings at once, from the event loop, when nothing needs awaiting:
        the journal is free, the write small and within the segment (no rotation), and
        its fsync, when due, is asked of the sync thread. False: nothing was written
        (use ``append``). A write error raises OSError, as ``append``."""
        if not lines or self._file is None or self._lock.locked():
            return False
        data = ("\n".join(lines) + "\n").encode("utf-8")
        if len(data) > INLINE_WRITE_BYTES or self._offset + len(data) >= self._segment_bytes:
            return False
        self._write_inline(self._file.fileno(), data, len(lines), self._fsync_due())
        self._appended(len(lines))
        return True

    def _fsync_due(self) -> bool:
        """Fsync with this append when the next one, expected as far ahead as the last
        one was behind, would come after the fsync deadline."""
        now = self._clock()
        gap = 0.0 if self._last_append is None else now - self._last_append
        self._last_append = now
        return now + gap >= self._last_fsync + self.cfg.fsync_interval_s

    def _appended(self, lines: int) -> None:
        self.lines_written += lines
        self.data_event.set()
        for listener in self.append_listeners:
            listener()

    def _write_blocking(self, fd: int, data: bytes, sync: bool) -> OSError | None:
        """In the worker thread: write all of ``data`` (unbuffered), then fsync if
        ``sync``. A write error raises; an fsync error is returned (the data is
        written, not yet durable)."""
        write_all(fd, data)
        return self._fsync_blocking(fd) if sync else None

    def _fsync_blocking(self, fd: int) -> OSError | None:
        try:
            self._fsync(fd)
        except OSError as exc:
            return exc
        return None

    def _write_inline(self, fd: int, data: bytes, lines: int, sync: bool) -> None:
        """Write small readings' ``data`` from the loop; their fsync, when ``sync``, is
        asked of the sync thread (or, when it cannot be asked, left to the fallback
        timer, due at once)."""
        try:
            write_all(fd, data)
        except OSError as exc:
            self._write_failed(exc, lines)
            raise
        self._offset += len(data)
        if sync and self._syncer.request(fd):
            self._sync_asked()
            return
        self._dirty = True
        self._arm_sync_timer()

    def _write_failed(self, exc: OSError, lines: int) -> None:
        self.write_errors += 1
        log.error("journal_write_failed", error=str(exc), lines=lines)

    async def _write(self, data: bytes, lines: int, *, sync: bool = False,
                     durable: bool = False) -> None:
        """Write ``data``: readings that fit INLINE_WRITE_BYTES from the loop
        (``_write_inline``); else in one worker-thread hop, or for
        small durable points from the loop with the fsync in a worker hop. A failed
        fsync leaves the data dirty for the fallback timer; for ``durable`` points it
        raises."""
        assert self._file is not None
        fd = self._file.fileno()
        small = len(data) <= INLINE_WRITE_BYTES
        if small and not durable:
            self._write_inline(fd, data, lines, sync)
            return
        try:
            if small:
                write_all(fd, data)
                fsync_error = await asyncio.to_thread(self._fsync_blocking, fd) if sync else None
            else:
                fsync_error = await asyncio.to_thread(self._write_blocking, fd, data, sync)
        except OSError as exc:
            self._write_failed(exc, lines)
            raise
        self._offset += len(data)
        if sync and fsync_error is None:
            self._synced()
            return
        self._dirty = True
        if fsync_error is None:
            self._arm_sync_timer()
            return
        self._arm_sync_timer(self.cfg.fsync_interval_s)
        if durable:
            raise fsync_error
        log.error("journal_fsync_failed", error=str(fsync_error))

    async def flush(self) -> None:
        async with self._lock:
            await self._sync_now()

    async def _sync_now(self) -> None:
        if not self._dirty or self._file is None:
            return
        fd = self._file.fileno()
        await asyncio.get_running_loop().run_in_executor(None, self._fsync, fd)
        self._synced()

    @property
    def fsyncs(self) -> int:
        """Fsyncs completed (the journal's own and its sync thread's)."""
        return self._fsyncs_awaited + self._syncer.done

    def _synced(self) -> None:
        self._fsyncs_awaited += 1
        self._sync_asked()
        self._last_fsync_done = self._last_fsync

    def _sync_asked(self) -> None:
        """Clean as of now: the fsync is done, or asked of the sync thread."""
        self._dirty = False
        self._last_fsync = self._clock()
        self._cancel_sync_timer()

    def _background_fsync_failed(self, exc: Exception) -> None:
        """The sync thread's fsync failed: dirty again, retried by the fallback timer
        an interval later (as a failed fsync in the append's own hop)."""
        log.error("journal_fsync_failed", error=str(exc))
        self._last_fsync = self._last_fsync_done
        if self._file is not None:
            self._dirty = True
            self._arm_sync_timer(self.cfg.fsync_interval_s)

    def _arm_sync_timer(self, min_delay: float = 0.0) -> None:
        """Fallback fsync at the deadline (after a failed fsync: an interval later)."""
        if self._sync_timer is None and self._fsync_task is not None:
            delay = self._last_fsync + self.cfg.fsync_interval_s - self._clock()
            self._sync_timer = asyncio.get_running_loop().call_later(
                max(min_delay, delay), self._sync_timer_fired)

    def _cancel_sync_timer(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None

    def _sync_timer_fired(self) -> None:
        self._sync_timer = None
        if not self._dirty:
            return
        if self._clock() < self._last_fsync + self.cfg.fsync_interval_s:
            self._arm_sync_timer()  # an injected clock running behind the loop's
            return
        self._sync_wanted.set()

    async def _fsync_loop(self) -> None:
        """Fsync dirty data within ``fsync_interval_s`` of the last fsync when no
        append did it (appends stopped); woken by the fallback timer only."""
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            async with self._lock:
                try:
                    await self._sync_now()
                except OSError as exc:
                    log.error("journal_fsync_failed", error=str(exc))
                    self._arm_sync_timer(self.cfg.fsync_interval_s)

    async def _rotate(self) -> None:
        await self._sync_now()
        # Open the next segment before closing this one: cancelled at any await here
        # (a shutdown cancels a pipeline append that outlasts its STOP_APPEND_WAIT_S),
        # the journal still holds an open file and a consistent position, never a
        # closed file the shutdown drain would fail on.
        new_file = await asyncio.to_thread(_open_segment,
                                          self.dir / segment_name(self._segment + 1))
        closed = self._segment
        old_file, self._file = self._file, new_file
        assert old_file is not None  # rotated only while open
        self._segment += 1
        self._offset = 0
        if self.cfg.compress:
            self._compress_later(closed)
        self._enforce_bounds()
        old_file.close()

    def _compress_later(self, number: int) -> None:
        task = asyncio.get_running_loop().create_task(self._compress(number))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _compress(self, number: int) -> None:
        """Gzip a closed segment in a worker thread, then publish the copy on the
        event loop: rename it to ``.gz`` and remove the plain file there, where
        the bounds delete segments too, so a bound always sees a segment as either
        plain or gzip, and one it deleted meanwhile never comes back as a .gz."""
        path = self.dir / segment_name(number)
        tmp = path.with_name(path.name + ".gz.tmp")
        try:
            await asyncio.to_thread(gzip_to_tmp, path)
            if path.exists():
                os.replace(tmp, path.with_name(path.name + ".gz"))
                path.unlink()
                return
        except FileNotFoundError:
            pass  # deleted by a bound before the copy began
        except OSError as exc:
            log.error("journal_compress_failed", segment=path.name, error=str(exc))
        with contextlib.suppress(OSError):
            tmp.unlink()  # the segment was deleted meanwhile, or the copy failed


    def _enforce_bounds(self) -> None:
        """Delete oldest closed segments until the directory fits max_bytes with
        room for a full active segment, and drop segments older than max_age_days."""
        segments = [s for s in list_segments(self.dir) if s.number != self._segment]
        oldest_cursor = self.cursors.oldest()
        has_sinks = bool(self.cursors.names())
        # Room for the active segment (cut at line ends: at most one line over) and for
        # the gzip copy of a closed segment being written beside it (line protocol
        # compresses about tenfold; a quarter is ample).
        budget = self.cfg.max_bytes - self._segment_bytes - self._segment_bytes // 4
        total = sum(s.size for s in segments)
        max_age_s = (self.cfg.max_age_days or 0) * 86400
        now = time.time()
        for info in segments:
            too_big = total > budget
            too_old = bool(max_age_s) and now - mtime_or(info.path, now) > max_age_s
            if not (too_big or too_old):
                break
            undelivered = has_sinks and (oldest_cursor is None
                                         or oldest_cursor.segment <= info.number)
            self._delete(info, undelivered, "size" if too_big else "age")
            total -= info.size

    def _delete(self, info: SegmentInfo, undelivered: bool, why: str) -> None:
        # Both forms: a crash between a compression's rename and its removal of
        # the plain file leaves the two (the plain one is the one listed).
        plain = self.dir / segment_name(info.number)
        removed = False
        for path in (plain, plain.with_name(plain.name + ".gz")):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                continue
        if not removed:
            return
        self.segments_deleted += 1
        if undelivered:
            self.undelivered_bytes_dropped += info.size
            log.error("journal_dropped_undelivered", segment=info.path.name, bytes=info.size,
                      reason=why, total_dropped_bytes=self.undelivered_bytes_dropped)
        else:
            log.info("journal_segment_deleted", segment=info.path.name, reason=why)

    def stats(self) -> dict[str, object]:
        segments = list_segments(self.dir)
        return {
            "dir": str(self.dir),
            "segments": len(segments),
            "bytes": sum(s.size for s in segments),
            "lines_written": self.lines_written,
            "fsyncs": self.fsyncs,
            "torn_lines_cut": self.torn_lines_cut,
            "segments_deleted": self.segments_deleted,
            "undelivered_bytes_dropped": self.undelivered_bytes_dropped,
            "write_errors": self.write_errors,
        }

    # The daemon runs the journal as a component (wattd.daemon.component).
    start, stop, status = open, close, stats
