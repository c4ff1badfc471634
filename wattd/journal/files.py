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

