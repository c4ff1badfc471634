"""Segment naming, listing and sizing. Positions are byte offsets in a segment's
uncompressed content, so compressing a closed segment moves no cursor."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

_SEGMENT_RE = re.compile(r"^(\d{8})\.lp(\.gz)?$")


class Position(NamedTuple):
    segment: int
    offset: int


@dataclass(slots=True, frozen=True)
class SegmentInfo:
    number: int
    path: Path
    compressed: bool
    size: int  # bytes on disk


def segment_name(number: int, compressed: bool = False) -> str:
    return f"{number:08d}.lp{'.gz' if compressed else ''}"


def list_segments(directory: str | os.PathLike[str]) -> list[SegmentInfo]:
    """Segments in order. When a segment exists both plain and compressed
    (compression finished, plain not yet removed), the plain one is listed."""
    found: dict[int, SegmentInfo] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _SEGMENT_RE.match(entry.name)
        if not match:
            continue
        number = int(match.group(1))
        compressed = match.group(2) is not None
        try:
            size = entry.stat().st_size
        except FileNotFoundError:
            continue
        info = SegmentInfo(number, Path(entry.path), compressed, size)
        if number not in found or (found[number].compressed and not compressed):
            found[number] = info
    return [found[n] for n in sorted(found)]


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
