"""A sink's entry in ``wattd status``: its report and its backlog in the journal.

Shared by the in-process delivery and the daemon's view of a delivery process.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import Any

from wattd.journal.segments import Position, list_segments


def uncompressed_backlog_bytes(directory: str | os.PathLike[str], pos: Position) -> int:
    """Bytes of line protocol after `pos`. Compressed segments count their
    uncompressed size (gzip's ISIZE trailer; exact below 4 GiB per segment)."""
    total = 0
    for info in list_segments(directory):
        if info.number < pos.segment:
            continue
        size = info.size
        if info.compressed:
            try:
                with open(info.path, "rb") as fh:
                    fh.seek(-4, os.SEEK_END)
                    size = struct.unpack("<I", fh.read(4))[0]
            except (OSError, struct.error):
                continue
        total += max(0, size - pos.offset) if info.number == pos.segment else size
    return total


def status_backlog_bytes(directory: str | os.PathLike[str], pos: Position) -> int:
    """`uncompressed_backlog_bytes` for a status line: -1 when the journal
    cannot be read."""
    try:
        return uncompressed_backlog_bytes(directory, pos)
    except OSError:
        return -1


def sink_status(report: Mapping[str, Any], backlog: int) -> dict[str, Any]:
    """A sink's entry in `wattd status`, from `Delivery.report()` and its backlog."""
    avg = float(report.get("avg_line_bytes") or 150.0)
    running = report.get("state") == "running"
    return {
        "url": report.get("url"), "state": report.get("state"),
        "cursor": report.get("cursor"),
        "backlog_bytes": backlog,
        "backlog_points_estimate": int(backlog / avg) if backlog > 0 else 0,
        "delivered_points": report.get("delivered_points", 0),
        "dropped_points": report.get("dropped_points", 0),
        "dropped_by_reason": report.get("dropped_by_reason", {}),
        "last_dropped_line": report.get("last_dropped_line"),
        "retries": report.get("retries", 0),
        "retry_in_s": None if running else report.get("retry_in_s"),
        "last_error": report.get("last_error"),
        "last_error_at": report.get("last_error_at"),
        "last_success_at": report.get("last_success_at"),
    }
