"""Reading the journal: plain and gzip segments, from any position, streaming.

The last line of the newest segment is only returned once it is complete
(ends with a newline): a torn last line is skipped.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO, Protocol

from wattd.journal.segments import Position, SegmentInfo, list_segments

BLOCK_BYTES = 1 << 20  # read size
_GZIP_READ_BYTES = BLOCK_BYTES // 4  # compressed bytes per inflate step


@dataclass(slots=True)
class ReadStats:
    """What a pass over the journal met, for a reader that reports it (``wattd report``)."""

    segments: int = 0
    bytes_read: int = 0  # uncompressed
    torn_lines: int = 0  # a segment's last line without its newline (skipped)
    damaged_segments: list[str] = field(default_factory=list)  # "name: what"


class _Segment(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def seek(self, offset: int, /) -> int: ...

    def __enter__(self) -> _Segment: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None: ...


class _GzipSegment:
    """A gzip segment (several members allowed) as a stream of decompressed
    chunks. A truncated file gives everything up to the damage, then raises
    EOFError (``gzip.open`` loses the last partial read instead)."""

    def __init__(self, path: os.PathLike[str]) -> None:
        self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self._inflater = zlib.decompressobj(wbits=31)
        self._in_member = False
        self._truncated = False
        self._pending = b""

    def __enter__(self) -> _GzipSegment:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._fh.close()

    def read(self, size: int = -1) -> bytes:
        """Some decompressed bytes (any length; ``size`` is a hint), b"" at the end."""
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        if self._truncated:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        while chunk := self._fh.read(_GZIP_READ_BYTES):
            out = self._inflate(chunk)
            if out:
                return out
        if self._in_member:
            self._truncated = True
            return self._inflater.flush() or self.read()
        return b""

    def _inflate(self, chunk: bytes) -> bytes:
        parts = []
        while chunk:
            self._in_member = True
            parts.append(self._inflater.decompress(chunk))
            if self._inflater.eof:
                chunk = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=31)
                self._in_member = False
            else:
                chunk = b""
        return b"".join(parts)

    def seek(self, offset: int) -> int:
        """Skip to ``offset`` of the decompressed content (forward, from the start)."""
        done = 0
        while done < offset:
            data = self.read()
            if not data:
                break
            if done + len(data) > offset:
                self._pending = data[offset - done:]
                return offset
            done += len(data)
        return done


def _open(info: SegmentInfo) -> _Segment:
    if info.compressed:
        return _GzipSegment(info.path)
    try:
        return open(info.path, "rb")
    except FileNotFoundError:
        # Compressed and removed since it was listed.
        return _GzipSegment(info.path.with_name(info.path.name + ".gz"))


def iter_lines(directory: str | os.PathLike[str], start: Position | None = None
               ) -> Iterator[tuple[Position, str]]:
    """Yield (position after the line, line without newline), oldest first."""
    for raw_pos, raw in iter_raw_lines(directory, start):
        yield raw_pos, raw.decode("utf-8", errors="replace")


def iter_raw_lines(directory: str | os.PathLike[str], start: Position | None = None
                   ) -> Iterator[tuple[Position, bytes]]:
    """Yield (position after the line, line as bytes), oldest first: the lines
    of `iter_blocks`, one by one."""
    for end, block, count in iter_blocks(directory, start):
        if count == 1:
            yield end, block
            continue
        pos = end.offset - len(block) - 1
        for line in block.split(b"\n"):
            pos += len(line) + 1
            yield Position(end.segment, pos), line


def iter_blocks(directory: str | os.PathLike[str], start: Position | None = None
                ) -> Iterator[tuple[Position, bytes, int]]:
    """Yield (position after the block, block, its line count), oldest first.

    A block is one or more complete, non-empty lines of one segment joined by
    newlines, without the trailing newline. A torn last line is not yielded
    (it is read again, complete, by a later reader). A segment that vanished
    since it was listed is skipped (deleted) or read from its .gz (compressed);
    a truncated gzip segment yields what was readable. A reader that reaches the
    end of the active segment after the writer rotated goes on with the newer
    segments, so one pass over a live journal sees every line once.
    """
    for segment, pos, block in _line_aligned(directory, start, None):
        if block.startswith(b"\n") or block.endswith(b"\n") or b"\n\n" in block or not block:
            # Empty lines (never written by the journal): the slow path.
            yield from _nonempty_lines(segment, pos, block)
            continue
        yield Position(segment, pos), block, block.count(b"\n") + 1


def iter_line_blocks(directory: str | os.PathLike[str], stats: ReadStats) -> Iterator[bytes]:
    """The whole journal as blocks of complete lines (split on ``\\n``; empty
    lines included), oldest first, as :func:`iter_blocks` reads it but without
    positions or line counts: the fastest pass. ``stats`` counts segments,
    bytes, torn lines and damaged segments."""
    for _, _, block in _line_aligned(directory, None, stats):
        yield block


def _line_aligned(directory: str | os.PathLike[str], start: Position | None,
                  stats: ReadStats | None) -> Iterator[tuple[int, int, bytes]]:
    """(segment, offset after the block, block of whole lines without the last newline)."""
    segments = list_segments(directory)
    index = len(segments)
    offset = 0
    for i, info in enumerate(segments):
        if start is None or info.number > start.segment:
            index = i  # (the cursor's segment was deleted: go on with the next one)
            break
        if info.number == start.segment:
            index, offset = i, start.offset
            break
    while index < len(segments):
        info = segments[index]
        index += 1
        try:
            fh = _open(info)
        except FileNotFoundError:
            offset = 0
            continue
        last = index == len(segments)
        if stats is not None:
            stats.segments += 1
        with fh:
            if offset:
                fh.seek(offset)
            pos = offset
            tail = b""
            try:
                while True:
                    chunk = fh.read(BLOCK_BYTES)
                    if not chunk:
                        if last and not info.compressed:
                            # The end of the active segment: if the writer has rotated
                            # since, this file is complete; read it to its end and go on
                            # with the new segments, never reopening this one (it is
                            # being compressed: reading it again means waiting for and
                            # decompressing the .gz up to the position).
                            newer = [s for s in list_segments(directory)
                                     if s.number > info.number]
                            if newer:
                                segments, index, last = newer, 0, False
                                continue
                        break
                    if stats is not None:
                        stats.bytes_read += len(chunk)
                    data = tail + chunk if tail else chunk
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        tail = data
                        continue
                    block, tail = data[:cut], data[cut + 1:]
                    pos += cut + 1
                    yield info.number, pos, block
            except (EOFError, zlib.error, OSError) as exc:
                # A truncated gzip segment: what was readable has been yielded.
                if stats is not None:
                    stats.damaged_segments.append(f"{info.path.name}: {exc}")
            if tail and stats is not None:
                stats.torn_lines += 1
        offset = 0


def _nonempty_lines(segment: int, end: int, block: bytes
                    ) -> Iterator[tuple[Position, bytes, int]]:
    pos = end - len(block) - 1
    for line in block.split(b"\n"):
        pos += len(line) + 1
        if line:
            yield Position(segment, pos), line, 1


def backlog_bytes(directory: str | os.PathLike[str], pos: Position | None) -> int:
    """Approximate bytes not yet read after ``pos`` (compressed segments count
    their on-disk size)."""
    total = 0
    for info in list_segments(directory):
        if pos is None or info.number > pos.segment:
            total += info.size
        elif info.number == pos.segment and not info.compressed:
            total += max(0, info.size - pos.offset)
    return total
