"""Keep glibc malloc from hoarding the daemon's transient buffers.

The daemon's big buffers are short-lived and mostly made in worker threads:
journal reads for delivery (1 MiB chunks), gzip of closed segments, the
joined batch a sink posts, the joined lines of a journal append. glibc
serves each thread from its own arena and, by default, raises its mmap
threshold to the size of any large block freed (up to 32 MiB), so after the
first few batches such buffers come from the arenas instead of mmap. A
thread arena only returns memory from its top, and only above a trim
threshold raised the same way: each worker's arena keeps the largest set of
buffers it ever held at once. In the soak that was 31 of 33 MB of thread
arenas free but resident, creeping up as each of the ~7 threads met a new
peak (RSS +10 % from the first to the fifth million readings; ``malloc_trim``
gave back 24 MB at once).

A fixed threshold turns the dynamic one off: blocks of ``MMAP_THRESHOLD``
bytes and more are mapped and unmapped on free (a few per journal batch, a
negligible cost), so arenas only hold small, recycled blocks. Only glibc:
elsewhere (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's own initial value, kept fixed


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold to ``threshold_bytes`` for good (no dynamic
    raising). True when it was applied; False off glibc or if refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: libc is among them
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present only in glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))
