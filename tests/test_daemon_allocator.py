"""The daemon's fixed glibc mmap threshold: large transient buffers are mapped
and unmapped, not kept in (per-thread) arenas after a larger block was freed."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
import textwrap

import pytest

from wattd.daemon.allocator import fix_mmap_threshold


def _glibc() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(),
                                reason="glibc malloc only")

# In a fresh interpreter: free a 4 MiB block (glibc's dynamic threshold would rise
# to 4 MiB), then hold a 1 MiB buffer made in a worker thread and count mmapped blocks.
PROBE = textwrap.dedent("""
    import ctypes, ctypes.util, sys, threading
    from wattd.daemon.allocator import fix_mmap_threshold

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    applied = fix_mmap_threshold() if sys.argv[1] == "fixed" else None
    big = bytearray(4 << 20)
    del big
    out = {}

    def worker():
        before = libc.mallinfo2().hblks
        buf = bytearray(1 << 20)
        out["mapped"] = libc.mallinfo2().hblks - before
        del buf

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    print(applied, out["mapped"])
""")


def _probe(mode: str) -> tuple[str, int]:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True, timeout=60)
    applied, mapped = proc.stdout.split()
    return applied, int(mapped)


def test_a_large_buffer_is_mapped_once_the_threshold_is_fixed() -> None:
    assert _probe("fixed") == ("True", 1)


def test_without_it_glibc_serves_the_buffer_from_an_arena() -> None:
    # The behaviour the fix exists for (if glibc changes it, the fix may go).
    assert _probe("default") == ("None", 0)


def test_applies_in_process() -> None:
    assert fix_mmap_threshold() is True
