"""The marker service's UDP sockets (thin: bytes in, bytes out) and the
listen/allow rules of SPEC 2 they are opened under."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence

from wattd.config import MarkersConfig, parse_listen
from wattd.errors import ConfigError
from wattd.logsetup import get_logger
from wattd.markers import wire
from wattd.markers.events import SourceAddress
from wattd.netaddr import resolver_host

log = get_logger("wattd.markers")

RECV_BUFFER_BYTES = 1 << 20
RECV_BYTES = wire.MAX_DATAGRAM_BYTES + 1  # a longer datagram arrives cut, and is refused
DRAIN_MAX = 512
ALLOW_CACHE_MAX = 4_096

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DatagramHandler = Callable[[bytes, SourceAddress], None]


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(resolver_host(host), None, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_listen(cfg: MarkersConfig, secret: bytes | None) -> list[tuple[str, int]]:
    """Validate ``markers.listen`` against the security rule of SPEC 2."""
    out = []
    for item in cfg.listen:
        try:
            host, port = parse_listen(item)
        except ValueError as exc:
            raise ConfigError(str(exc), key="markers.listen") from None
        if not _is_loopback(host) and secret is None and not cfg.allow:
            raise ConfigError(
                f"listening on non-loopback address {item!r} needs markers.secret_file "
                "or markers.allow (CIDR list): anyone on the network could mark runs",
                key="markers.listen")
        out.append((host, port))
    return out


def parse_allow(items: Sequence[str]) -> list[IPNetwork]:
    nets: list[IPNetwork] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"bad CIDR {item!r}", key="markers.allow") from None
    return nets


class AllowList:
    """``markers.allow``: loopback senders always pass; a bounded cache of answers."""

    def __init__(self, items: Sequence[str]) -> None:
        self.networks = parse_allow(items)
        self._cache: OrderedDict[str, bool] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self.networks)

    def allows(self, source: str) -> bool:
        cached = self._cache.get(source)
        if cached is not None:
            return cached
        try:
            address = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            result = False
        else:
            result = address.is_loopback or any(address in net for net in self.networks)
        if len(self._cache) >= ALLOW_CACHE_MAX:
            self._cache.popitem(last=False)
        self._cache[source] = result
        return result


class UdpPort:
    """One bound UDP socket read straight from the event loop.

    asyncio's datagram transport reads one datagram per loop iteration; under a
    flood the receive buffer then fills and the kernel drops legitimate markers
    with the junk. Here each readiness callback drains up to ``DRAIN_MAX``
    datagrams (bounded, so readings keep flowing), which empties the buffer
    several times faster than one sender can fill it. The handler never
    kills the port: a failure is counted and logged.
    """

    def __init__(self, sock: socket.socket, index: int, on_datagram: DatagramHandler,
                 counters: dict[str, int]) -> None:
        self.sock = sock
        self.index = index
        self.on_datagram = on_datagram
        self.counters = counters
        self._loop = asyncio.get_running_loop()
        self._closing = False
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._drain)

    @property
    def address(self) -> tuple[str, int]:
        bound = self.sock.getsockname()
        return str(bound[0]), int(bound[1])

    def _drain(self) -> None:
        recvfrom = self.sock.recvfrom
        on_datagram = self.on_datagram
        for _ in range(DRAIN_MAX):
            try:
                data, addr = recvfrom(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors for replies to vanished senders
                self.counters["send_errors"] += 1
                continue
            try:
                on_datagram(data, SourceAddress.from_sockaddr(addr, self.index))
            except Exception:  # the port must never die on input
                self.counters["internal_errors"] += 1
                log.exception("marker_handler_failed")

    def send(self, data: bytes, to: SourceAddress) -> bool:
        """Send one reply (non-blocking); False if it could not go."""
        if self._closing:
            return False
        try:
            self.sock.sendto(data, to.sockaddr())
        except OSError:  # a full send buffer, an unreachable sender
            self.counters["send_errors"] += 1
            return False
        return True

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


def open_port(host: str, port: int, index: int, on_datagram: DatagramHandler,
              counters: dict[str, int]) -> UdpPort:
    """Bind ``host:port`` (IPv6 sockets v6-only) and start reading it."""
    infos = socket.getaddrinfo(resolver_host(host), port, type=socket.SOCK_DGRAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          key="markers.listen") from None
    return UdpPort(sock, index, on_datagram, counters)
