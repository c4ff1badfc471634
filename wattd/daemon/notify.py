"""sd_notify: tell systemd how the daemon is doing (``Type=notify``).

The protocol (sd_notify(3)): one datagram of newline-separated ``KEY=VALUE``
assignments sent to the AF_UNIX SOCK_DGRAM socket named by ``$NOTIFY_SOCKET``;
a name starting with ``@`` is an abstract socket (the ``@`` stands for a NUL
byte). Without ``$NOTIFY_SOCKET`` (not run by systemd, or ``Type=simple``)
every call is a silent no-op; a malformed value is warned about once and
then ignored, so a bad environment never stops the daemon.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from wattd.logsetup import get_logger

log = get_logger(__name__)

# sockaddr_un.sun_path is 108 bytes on Linux, NUL terminator included for paths.
_SUN_PATH_MAX = 108


def parse_notify_socket(value: str) -> str | bytes:
    """The address to ``sendto`` for a ``$NOTIFY_SOCKET`` value; ValueError if malformed."""
    if value.startswith("@"):
        name = value[1:].encode("utf-8", "surrogateescape")
        if not name:
            raise ValueError("abstract socket name is empty")
        if len(name) + 1 > _SUN_PATH_MAX:
            raise ValueError(f"abstract socket name longer than {_SUN_PATH_MAX - 1} bytes")
        return b"\0" + name
    if value.startswith("/"):
        if len(value.encode("utf-8", "surrogateescape")) >= _SUN_PATH_MAX:
            raise ValueError(f"socket path longer than {_SUN_PATH_MAX - 1} bytes")
        return value
    raise ValueError("neither an absolute path nor an abstract socket name starting with '@'")


def _one_line(text: str) -> str:
    # A newline would end the assignment early and start a bogus one.
    return " ".join(text.split())


class Notifier:
    """Sends sd_notify datagrams; every method is a no-op when disabled.

    Sending never raises: systemd gone or the socket full is counted and
    logged (once per kind of error), because a notification is advice, not
    data.
    """

    def __init__(self, address: str | bytes | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self.sent = 0
        self.send_errors = 0
        self._warned: set[str] = set()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET``; disabled when unset, empty or malformed."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        if not value:
            return cls(None)
        try:
            address = parse_notify_socket(value)
        except ValueError as exc:
            log.warning("notify_socket_malformed", NOTIFY_SOCKET=value, reason=str(exc),
                        effect="systemd notifications disabled")
            return cls(None)
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True if it went out."""
        if self.address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop on a full receive queue.
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            self.send_errors += 1
            kind = type(exc).__name__ if exc.errno is None else os.strerror(exc.errno)
            if kind not in self._warned:
                self._warned.add(kind)
                log.warning("notify_send_failed", socket=self.describe(), error=str(exc),
                            message=assignments[0])
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        extra = () if status is None else (f"STATUS={_one_line(status)}",)
        return self.send("READY=1", *extra)

    def reloading(self, status: str | None = None) -> bool:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 (Type=notify-reload);
        # older managers ignore the extra assignment.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        extra = () if status is None else (f"STATUS={_one_line(status)}",)
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *extra)

    def stopping(self, status: str | None = None) -> bool:
        extra = () if status is None else (f"STATUS={_one_line(status)}",)
        return self.send("STOPPING=1", *extra)

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def describe(self) -> str:
        if self.address is None:
            return "disabled"
        if isinstance(self.address, bytes):
            return "@" + self.address[1:].decode("utf-8", "replace")
        return self.address

    def stats(self) -> dict[str, Any]:
        return {"socket": self.describe(), "sent": self.sent, "send_errors": self.send_errors}

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
