"""Copy a child's stdout to ours unchanged while keeping it for the parsers."""

from __future__ import annotations

import os
import threading

CHUNK_BYTES = 65536
KEEP_HEAD_BYTES = 256 * 1024  # the banner (ab: "This is ApacheBench")
KEEP_TAIL_BYTES = 4 * 1024 * 1024  # the summary comes last


class Tee:
    """Reads ``fd`` until EOF in a thread; writes every byte to ``out_fd``."""

    def __init__(self, fd: int, out_fd: int = 1) -> None:
        self.fd = fd
        self.out_fd = out_fd
        self._head = bytearray()
        self._tail = bytearray()
        self.dropped_bytes = 0
        self.write_failed = False
        self._thread = threading.Thread(target=self._run, name="wattd-tee", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, CHUNK_BYTES)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            except OSError:
                break
            if not data:
                break
            self._write(data)
            self._keep(data)
        os.close(self.fd)

    def _write(self, data: bytes) -> None:
        if self.write_failed:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.out_fd, view)
            except OSError:  # our stdout went away (| head): keep draining the child
                self.write_failed = True
                return
            view = view[written:]

    def _keep(self, data: bytes) -> None:
        room = KEEP_HEAD_BYTES - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        excess = len(self._tail) - KEEP_TAIL_BYTES
        if excess > 0:
            del self._tail[:excess]
            self.dropped_bytes += excess

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def text(self) -> str:
        """What was read (head and tail when the middle was too long to keep)."""
        sep = b"\n" if self.dropped_bytes else b""
        return (bytes(self._head) + sep + bytes(self._tail)).decode("utf-8", "replace")
