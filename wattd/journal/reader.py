"""Reading the journal: plain and gzip segments, from any position, streaming.

The last line of the newest segment is only returned once it is complete
(ends with a newline): a torn last line is skipped.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from typing import BinaryIO

from wattd.journal.segments import Position, SegmentInfo, list_segments

_CHUNK = 1 << 20


def _open(info: SegmentInfo) -> BinaryIO:
    if info.compressed:
        return gzip.open(info.path, "rb")  # type: ignore[return-value]
    try:
        return open(info.path, "rb")
    except FileNotFoundError:
        # Compressed and removed since it was listed.
        return gzip.open(info.path.with_name(info.path.name + ".gz"), "rb")  # type: ignore[return-value]


def open_segment(info: SegmentInfo) -> BinaryIO:
    """A segment's uncompressed content (a closed segment is gunzipped)."""
    return _open(info)


def _start_index(segments: list[SegmentInfo], start: Position | None) -> tuple[int, int]:
    if start is None:
        return 0, 0
    for i, info in enumerate(segments):
        if info.number == start.segment:
            return i, start.offset
        if info.number > start.segment:
            return i, 0  # the cursor's segment was deleted: go on with the next one
    return len(segments), 0


def iter_lines(directory: str | os.PathLike[str], start: Position | None = None
               ) -> Iterator[tuple[Position, str]]:
    """Yield (position after the line, line without newline), oldest first."""
    for raw_pos, raw in iter_raw_lines(directory, start):
        yield raw_pos, raw.decode("utf-8", errors="replace")


def iter_raw_lines(directory: str | os.PathLike[str], start: Position | None = None
                   ) -> Iterator[tuple[Position, bytes]]:
    segments = list_segments(directory)
    index, offset = _start_index(segments, start)
    for i in range(index, len(segments)):
        info = segments[i]
        try:
            fh = _open(info)
        except FileNotFoundError:
            continue
        with fh:
            if offset:
                fh.seek(offset)
            pos = offset
            tail = b""
            try:
                while True:
                    chunk = fh.read(_CHUNK)
                    if not chunk:
                        break
                    data = tail + chunk
                    lines = data.split(b"\n")
                    tail = lines.pop()
                    for line in lines:
                        pos += len(line) + 1
                        if line:
                            yield Position(info.number, pos), line
            except (EOFError, gzip.BadGzipFile, OSError):
                pass  # a truncated gzip segment: what was readable has been yielded
        offset = 0


def read_batch(directory: str | os.PathLike[str], pos: Position | None, max_lines: int,
               max_bytes: int = 8 << 20) -> tuple[list[str], Position]:
    """Up to ``max_lines`` complete lines after ``pos``, and the position after them.

    Moves to the next segment when a closed segment is exhausted. Returns
    ([], pos) when caught up with the writer.
    """
    segments = list_segments(directory)
    if not segments:
        return [], pos or Position(1, 0)
    index, offset = _start_index(segments, pos)
    lines: list[str] = []
    current = pos or Position(segments[0].number, 0)
    while index < len(segments) and len(lines) < max_lines:
        info = segments[index]
        is_last = index == len(segments) - 1
        try:
            fh = _open(info)
        except FileNotFoundError:
            index += 1
            offset = 0
            continue
        with fh:
            if offset:
                fh.seek(offset)
            budget = max_bytes
            buf = io.BytesIO()
            exhausted = False
            try:
                while budget > 0:
                    chunk = fh.read(min(_CHUNK, budget))
                    if not chunk:
                        exhausted = True
                        break
                    buf.write(chunk)
                    budget -= len(chunk)
            except (EOFError, gzip.BadGzipFile, OSError):
                exhausted = True
            data = buf.getvalue()
        end = data.rfind(b"\n")
        complete = data[:end + 1] if end >= 0 else b""
        consumed = 0
        for raw in complete.split(b"\n")[:-1]:
            if len(lines) >= max_lines:
                break
            consumed += len(raw) + 1
            if raw:
                lines.append(raw.decode("utf-8", errors="replace"))
        offset += consumed
        current = Position(info.number, offset)
        if len(lines) >= max_lines or not exhausted or consumed < len(complete):
            break
        if is_last:
            break  # caught up (a partial last line stays for later)
        # Closed segment fully read: continue in the next one.
        index += 1
        offset = 0
        current = Position(segments[index].number, 0)
    return lines, current


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
