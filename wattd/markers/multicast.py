"""Multicast markers, the daemon side (SPEC 10): join a group, answer from a
socket of one's own.

Several daemons on one host share the group and port (SO_REUSEADDR and
SO_REUSEPORT: every member gets its own copy of each datagram). A reply is
never sent from the shared group socket: each daemon opens a unicast socket
(on the interface address, an ephemeral port) and answers from it, so every
daemon's replies come from an address and port of its own and the client can
tell them apart. That socket is also read: a message sent to it directly is
handled like any other.

Multicast counts as non-loopback: ``markers.secret_file`` or ``markers.allow``
is required, or the daemon refuses to start.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct

from wattd.config import MarkersConfig, parse_listen
from wattd.errors import ConfigError
from wattd.logsetup import get_logger
from wattd.markers import wire
from wattd.markers.events import SourceAddress
from wattd.markers.port import DatagramHandler, UdpPort

log = get_logger("wattd.markers")

RECV_BUFFER_BYTES = 1 << 20
KEY = "markers.multicast"


def parse_group(text: str) -> tuple[str, int]:
    """``239.192.92.88:9288`` -> (group, port); an IPv4 multicast address."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = port_text, str(wire.DEFAULT_PORT)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"group {text!r}: not an IPv4 address", key=f"{KEY}.group") from None
    if address.version != 4 or not address.is_multicast:
        raise ConfigError(f"group {text!r}: not an IPv4 multicast address (224.0.0.0/4; "
                          "239.0.0.0/8 is for local use)", key=f"{KEY}.group")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"group {text!r}: bad port", key=f"{KEY}.group")
    return host, int(port_text)


def check_multicast(markers: MarkersConfig) -> tuple[str, int, str] | None:
    """(group, port, interface address) from ``markers.multicast``, or None.
    Raises ConfigError without a secret or an allow list."""
    cfg = markers.multicast
    if cfg is None:
        return None
    group, port = parse_group(cfg.group)
    interface = cfg.interface or "0.0.0.0"  # noqa: S104 - "any interface" is the documented default
    try:
        version: int = ipaddress.ip_address(interface).version
    except ValueError:
        version = 0
    if version != 4:
        raise ConfigError(f"interface {interface!r}: give the IPv4 address of the interface",
                          key=f"{KEY}.interface")
    for item in markers.listen:
        with contextlib.suppress(ValueError):  # a bad listen is reported by the service
            host, listen_port = parse_listen(item)
            if listen_port == port and host in ("0.0.0.0", ""):  # noqa: S104 - checking it
                raise ConfigError(
                    f"markers.listen {item!r} holds port {port} on every IPv4 address, the "
                    "group's too: give the unicast listen another port or a specific address",
                    key=KEY)
    if markers.secret_file is None and not markers.allow:
        raise ConfigError("multicast markers need markers.secret_file or markers.allow "
                          "(CIDR list): anyone on the network could mark runs", key=KEY)
    return group, port, interface


def open_group_socket(group: str, port: int, interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
        sock.bind((group, port))  # the group address: unicast to this port is not ours
        membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(interface))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot join {group}:{port} on {interface}: {exc.strerror}",
                          key=KEY) from None
    return sock


def open_reply_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((interface, 0))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot open the reply socket on {interface}: {exc.strerror}",
                          key=f"{KEY}.interface") from None
    return sock


class MulticastEndpoint:
    """The group membership of one marker service: the group socket and the reply
    socket, both read into ``on_datagram`` as listener ``index``, so every reply goes
    out of the reply socket (:meth:`send`). ``stop_receiving`` closes the group
    socket (before the service answers its waiting stops), ``close`` the reply
    socket (after)."""

    def __init__(self, group: str, port: int, interface: str, index: int,
                 on_datagram: DatagramHandler, counters: dict[str, int]) -> None:
        self.group, self.port, self.interface = group, port, interface
        self.index = index
        self.on_datagram = on_datagram
        self.counters = counters
        self.reply_address: tuple[str, int] | None = None
        self._group: UdpPort | None = None
        self._reply: UdpPort | None = None

    async def start(self) -> None:
        group_sock = open_group_socket(self.group, self.port, self.interface)
        try:
            reply_sock = open_reply_socket(self.interface)
        except ConfigError:
            group_sock.close()
            raise
        self._group = UdpPort(group_sock, self.index, self.on_datagram, self.counters)
        self._reply = UdpPort(reply_sock, self.index, self.on_datagram, self.counters)
        self.reply_address = self._reply.address
        log.info("markers_multicast_joined", group=f"{self.group}:{self.port}",
                 interface=self.interface,
                 reply_from=f"{self.reply_address[0]}:{self.reply_address[1]}")

    def send(self, data: bytes, to: SourceAddress) -> bool:
        return self._reply is not None and self._reply.send(data, to)

    async def stop_receiving(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None

    async def close(self) -> None:
        await self.stop_receiving()
        if self._reply is not None:
            self._reply.close()
            self._reply = None

    def status(self) -> dict[str, object]:
        reply = None if self.reply_address is None else \
            f"{self.reply_address[0]}:{self.reply_address[1]}"
        return {"group": f"{self.group}:{self.port}", "interface": self.interface,
                "reply_from": reply}
