"""Serve a simulated meter's frames on a pseudo-terminal, paced at the real wire rate.

A writer thread asks the chip model for a frame every frame interval and
writes it in small chunks, each at the moment its last byte would have
finished arriving at the configured baud rate (24 bytes take 55 ms at 4800
8E1). Readers open ``port_path``: a symlink in a temp directory that stays
the same across ``unplug()``/``replug()`` (a pty's slave path changes each
time it is reopened), so a daemon reconnects exactly as to a USB adapter.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import tempfile
import termios
import threading
import time
import tty
from typing import Protocol

from wattd.protocols.base import SerialSettings

_BAUD_CONSTANTS = {1200: termios.B1200, 2400: termios.B2400, 4800: termios.B4800,
                   9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400}


class FrameSource(Protocol):
    def frame_at(self, t_s: float) -> bytes: ...


class PolledChip(Protocol):
    """A chip that only answers requests (BL0940/BL0942): bytes in, answers out."""

    def receive(self, data: bytes, t_s: float) -> list[bytes]: ...


def configure_raw(fd: int, settings: SerialSettings) -> None:
    """Put a tty in raw mode with the chip's line settings (8E1 at 4800 for the HLW family)."""
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}[settings.bytesize]
    if settings.parity != "N":
        cflag |= termios.PARENB | (termios.PARODD if settings.parity == "O" else 0)
    if settings.stopbits == 2:
        cflag |= termios.CSTOPB
    attrs[2] = cflag | termios.CLOCAL | termios.CREAD
    speed = _BAUD_CONSTANTS.get(settings.baudrate, termios.B4800)
    attrs[4] = attrs[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class PtyMeterServer:
    """One simulated meter on a pty. ``start()`` runs it in a thread; ``stop()`` ends it."""

    def __init__(self, chip: FrameSource | PolledChip, settings: SerialSettings, *,
                 link_path: str | os.PathLike[str] | None = None,
                 frame_interval_s: float = 0.104, chunk_bytes: int = 4) -> None:
        self.chip = chip
        self.settings = settings
        self.frame_interval_s = frame_interval_s
        self.chunk_bytes = max(1, chunk_bytes)
        self._own_dir: str | None = None
        if link_path is None:
            self._own_dir = tempfile.mkdtemp(prefix="wattd-sim-")
            link_path = os.path.join(self._own_dir, "ttySIM0")
        self.port_path = str(link_path)
        self.frames_sent = 0
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.plug()

    # ------------------------------------------------------------------ plug
    def plug(self) -> None:
        """(Re)create the pty and point ``port_path`` at its slave (a 'USB replug')."""
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            configure_raw(slave, self.settings)
            os.set_blocking(master, False)  # nobody reading: bytes are lost, as on a wire
            tmp = f"{self.port_path}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.port_path)
            self._master, self._slave = master, slave

    replug = plug

    def unplug(self) -> None:
        """Close the pty and remove ``port_path``: readers see EOF/EIO, then no port."""
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.port_path)
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    # ------------------------------------------------------------------ serve
    def start(self) -> PtyMeterServer:
        self._thread = threading.Thread(target=self.serve, name=f"sim {self.port_path}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.unplug()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> PtyMeterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(self) -> None:
        """Write frames until ``stop()``; the chip keeps running while unplugged."""
        if not hasattr(self.chip, "frame_at"):
            self._serve_polled()
            return
        assert hasattr(self.chip, "frame_at")
        byte_s = self.settings.wire_time_ns(1) / 1e9
        t0 = time.monotonic()
        next_frame = t0
        while not self._stop.is_set():
            frame = self.chip.frame_at(next_frame - t0)
            for start in range(0, len(frame), self.chunk_bytes):
                chunk = frame[start:start + self.chunk_bytes]
                due = next_frame + (start + len(chunk)) * byte_s
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                self._write(chunk)
            self.frames_sent += 1
            next_frame += self.frame_interval_s
            if next_frame < time.monotonic() - 1.0:  # we were suspended: do not burst
                next_frame = time.monotonic()
            if self._stop.wait(max(0.0, next_frame - time.monotonic())):
                return

    def _serve_polled(self) -> None:
        """Read the host's requests from the pty and answer them at the wire rate."""
        chip = self.chip
        assert not hasattr(chip, "frame_at")
        byte_s = self.settings.wire_time_ns(1) / 1e9
        t0 = time.monotonic()
        while not self._stop.is_set():
            master = self._master
            if master is None:  # unplugged: nobody can ask
                self._stop.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                data = os.read(master, 256) if ready else b""
            except (OSError, ValueError):  # unplugged under our feet, or nothing yet
                continue
            if not data:
                continue
            for answer in chip.receive(data, time.monotonic() - t0):
                start = time.monotonic()
                for at in range(0, len(answer), self.chunk_bytes):
                    chunk = answer[at:at + self.chunk_bytes]
                    due = start + (at + len(chunk)) * byte_s
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                    self._write(chunk)
                self.frames_sent += 1

    def _write(self, chunk: bytes) -> None:
        with self._lock:
            if self._master is None:
                return
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._master, chunk)

