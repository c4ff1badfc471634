"""Small blocking file helpers of the journal writer (no event loop here)."""

from __future__ import annotations

import gzip
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


def cut_torn_tail(path: Path) -> int:
    """Cut a torn last line (a crash mid-write) off a plain segment, fsynced; the
    bytes cut (0: the segment ends with a whole line)."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        back = min(size, 1 << 16)
        fh.seek(size - back)
        tail = fh.read(back)
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        new_size = size - back + cut + 1 if cut >= 0 else (0 if back == size else size)
        if new_size == size:
            return 0
        fh.truncate(new_size)
        os.fsync(fh.fileno())
    return size - new_size


COPY_CHUNK_BYTES = 1 << 20


def gzip_to_tmp(src: Path) -> Path:
    """Write the gzip copy of a closed segment beside it as ``<name>.gz.tmp``,
    fsynced, and return its path (the worker-thread half of a compression)."""
    tmp = src.with_name(src.name + ".gz.tmp")
    with open(src, "rb") as fin, gzip.open(tmp, "wb", compresslevel=6) as fout:
        while chunk := fin.read(COPY_CHUNK_BYTES):  # not shutil: its import pulls in bz2, lzma
            fout.write(chunk)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    return tmp
