"""Loopback ports for servers and daemons that a test starts later.

A port picked by binding port 0 comes from the kernel's ephemeral range: once the
probe socket is closed, any outgoing connection or unbound UDP client on the
machine (this suite's own status polls and database writes, a parallel run) can
be given that very port before the server started later binds it, and the start
fails with "address in use". Ports below the ephemeral range are never handed
out implicitly, so only another explicit bind can take one: pick those, at
random, and check that they are free now."""

from __future__ import annotations

import random
import socket

_FALLBACK_LOW = 32768
_RANDOM = random.SystemRandom()  # never the seeded global one: parallel runs differ


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_LOW


def _is_free(port: int, kinds: tuple[int, ...]) -> bool:
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kind: str = "tcp") -> int:
    """A loopback port (``kind`` "tcp" or "udp") free now and outside the kernel's
    ephemeral range (free for both protocols, so either may use it)."""
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
    low = min(_ephemeral_low(), _FALLBACK_LOW)
    if low > 12000:
        for _ in range(200):
            port = _RANDOM.randrange(10000, low)
            if _is_free(port, kinds):
                return port
    # No room below the ephemeral range: the kernel's pick (raced, but free now).
    with socket.socket(socket.AF_INET,
                       socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
