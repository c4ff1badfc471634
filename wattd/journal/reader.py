"""Reading the journal: plain and gzip segments, from any position, streaming.

The last line of the newest segment is only returned once it is complete
(ends with a newline): a torn last line is skipped.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from typing import BinaryIO

from wattd.journal.segments import Position, SegmentInfo, list_segments

BLOCK_BYTES = 1 << 20  # read size


def _open(info: SegmentInfo) -> BinaryIO:
    if info.compressed:
        return gzip.open(info.path, "rb")  # type: ignore[return-value]
    try:
        return open(info.path, "rb")
    except FileNotFoundError:
        # Compressed and removed since it was listed.
        return gzip.open(info.path.with_name(info.path.name + ".gz"), "rb")  # type: ignore[return-value]


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
                    data = tail + chunk if tail else chunk
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        tail = data
                        continue
                    block, tail = data[:cut], data[cut + 1:]
                    pos += cut + 1
                    if block.startswith(b"\n") or block.endswith(b"\n") or b"\n\n" in block \
                            or not block:
                        # Empty lines (never written by the journal): the slow path.
                        yield from _nonempty_lines(info.number, pos, block)
                        continue
                    yield Position(info.number, pos), block, block.count(b"\n") + 1
            except (EOFError, gzip.BadGzipFile, OSError):
                pass  # a truncated gzip segment: what was readable has been yielded
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
