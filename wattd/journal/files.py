"""Small blocking file helpers of the journal writer (no event loop here)."""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (unbuffered; a short write is continued)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def mtime_or(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return default


def split_at_lines(data: bytes, room: int, segment_bytes: int) -> list[bytes]:
    """Cut ``data`` (whole lines) into the piece that fills the active segment
    (``room`` bytes left before ``segment_bytes``), then segment-sized pieces; each
    cut is after the line that reaches the size. Usually one piece: ``[data]``."""
    pieces: list[bytes] = []
    start = 0
    while len(data) - start > room:
        cut = data.find(b"\n", start + max(room, 1) - 1) + 1
        if cut <= 0 or cut >= len(data):
            break
        pieces.append(data[start:cut])
        start = cut
        room = segment_bytes
    pieces.append(data[start:] if start else data)
    return pieces
