"""Batches of journal lines for a sink: the journal read in blocks, cut at the
Nth newline so a batch holds exactly the lines wanted (SPEC 4).

A batch is a list of blocks (each one or more lines joined by newlines, no
trailing newline) with its line count kept beside it (``bytes.count``, C speed),
so no Python work is done per line on the normal path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from wattd.journal.reader import iter_blocks
from wattd.journal.segments import Position

MAX_BATCH_BYTES = 8 << 20  # keep a request well under InfluxDB 1.x's 25 MB body limit


def nth_newline(block: bytes, k: int, newlines: int) -> int:
    """Index of the k-th (1-based) newline of `block`, which has ``newlines`` >= k of
    them. A guess from the mean line length, then a few `find`s: C speed, counting
    the shorter side of the guess."""
    guess = min(len(block), k * len(block) // (newlines + 1))
    if guess <= len(block) // 2:
        seen = block.count(b"\n", 0, guess)
    else:
        seen = newlines - block.count(b"\n", guess)
    idx = guess
    if seen >= k:
        for _ in range(seen - k + 1):
            idx = block.rfind(b"\n", 0, idx)
        return idx
    idx = guess - 1
    for _ in range(k - seen):
        idx = block.find(b"\n", idx + 1)
    return idx


def split_lines(chunks: list[bytes]) -> list[bytes]:
    """The lines of a batch (the bisection needs them)."""
    return b"\n".join(chunks).split(b"\n")


class BatchReader:
    """Reads one sink's batches from the journal in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        # The open block reader, and the part of a block cut off at the last batch size.
        self._iter: Iterator[tuple[Position, bytes, int]] | None = None
        self._rest: tuple[Position, bytes, int] | None = None

    def pull(self, want: int, after: Position) -> tuple[list[bytes], int, Position, int]:
        """Blocks holding up to `want` complete lines after `after`, their line
        count, the position after them and their size with newlines.

        Blocking (file reads, gunzip): call it in a worker thread. Keeps one
        streaming reader open across calls (so a gzip segment is
        decompressed once, not once per batch); a new one is opened at `after`
        whenever the previous one reached the end of the journal. A block longer
        than wanted is cut at its `want`-th newline; the rest is kept for the
        next call.
        """
        blocks: list[bytes] = []
        count = 0
        nbytes = 0
        end = after
        for _attempt in range(2):
            if self._iter is None and self._rest is None:
                self._iter = iter_blocks(self.dir, end)
            while True:
                item = self._rest
                if item is not None:
                    self._rest = None
                else:
                    assert self._iter is not None
                    item = next(self._iter, None)
                    if item is None:
                        break
                pos, block, n = item
                room = want - count
                if n > room:
                    cut = nth_newline(block, room, n - 1)
                    rest = block[cut + 1:]
                    self._rest = (pos, rest, n - room)
                    pos = Position(pos.segment, pos.offset - len(rest) - 1)
                    block, n = block[:cut], room
                blocks.append(block)
                count += n
                nbytes += len(block) + 1
                end = pos
                if count >= want or nbytes >= MAX_BATCH_BYTES:
                    return blocks, count, end, nbytes
            # This reader reached the end of the segments it listed when it opened.
            # If it found lines, the writer may have rotated meanwhile: look once more.
            self.close()
            if not count:
                break
        return blocks, count, end, nbytes

    def close(self) -> None:
        """Drop the open reader; the next ``pull`` opens one at its ``after``."""
        self._rest = None
        it, self._iter = self._iter, None
        close = getattr(it, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # still running in a cancelled read
                close()
