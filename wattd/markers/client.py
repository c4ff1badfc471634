"""Marker client: send one message over UDP and wait for its reply.

Import-light on purpose (it runs inside benchmark loops): os, time, the C
``_socket`` module, the light wire module, the backoff and the address parser
only (the ``socket`` module
wraps ``_socket`` in enum and selectors imports: milliseconds of every
``wattd mark``; a host is passed to getaddrinfo as bytes when it is ASCII, which
spares the idna codec). Retransmissions resend the identical
datagram (same ``id``, same ``ts``, same mac), so the daemon treats them as
one message and answers each with the same reply.
"""

from __future__ import annotations

import _socket
import os
import time

from wattd.backoff import Backoff
from wattd.errors import MarkerInputError, WattdError
from wattd.markers import wire
from wattd.netaddr import resolver_host, split_host_port

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
# A stop is answered once the reading after the stop time arrived (up to the
# daemon's stop_wait_s, 5 s, plus its hold-back): 8 s leaves room for that.
DEFAULT_TIMEOUT_S = 8.0
DEFAULT_RETRIES = 5
FIRST_RETRY_S = 0.2  # then doubling: 0.2, 0.4, 0.8, 1.6, 3.2 s


class NoReplyError(WattdError):
    """No reply after all retransmissions (daemon down, wrong address, lost packets)."""


class MarkerRefusedError(WattdError):
    """The daemon answered ``error <code> <text>``."""

    def __init__(self, reply: wire.Reply) -> None:
        self.reply = reply
        self.code = reply.code
        super().__init__(f"marker refused: {reply.code} {reply.text}")


def parse_target(text: str | None) -> tuple[str, int]:
    """``HOST[:PORT]`` (IPv6 as ``[addr]:port`` or a bare address), default
    ``$WATTD_MARKER``, then 127.0.0.1:9288."""
    if not text:
        text = os.environ.get("WATTD_MARKER") or f"{DEFAULT_HOST}:{wire.DEFAULT_PORT}"
    return split_host_port(text, wire.DEFAULT_PORT)


def new_id() -> str:
    return os.urandom(6).hex()


class MarkerClient:
    """One UDP socket connected to the daemon; reusable for many messages."""

    def __init__(self, to: str | None = None, *, secret: bytes | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES) -> None:
        host, port = parse_target(to)
        infos = _socket.getaddrinfo(resolver_host(host), port,
                                    type=_socket.SOCK_DGRAM)
        if not infos:
            raise NoReplyError(f"cannot resolve {host!r}")
        family, kind, proto, _, sockaddr = infos[0]
        self.address = sockaddr
        self.secret = secret
        self.timeout_s = timeout_s
        self.retries = retries
        self._refused = False  # an ICMP port-unreachable was seen
        self._sock = _socket.socket(family, kind, proto)
        self._sock.connect(sockaddr)  # only the daemon's replies reach us

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> MarkerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, verb: str, name: str | None = None, *,
             tags: Mapping[str, object] | None = None, phase: str | None = None,
             meter: str | None = None) -> wire.Reply:
        """Send one message, retransmitting until a reply with its id arrives.

        Returns the reply (ok or error). Raises NoReplyError after the timeout,
        MarkerInputError('syntax') for a message that cannot be formatted."""
        msg_id = new_id()
        data = wire.format_message(
            verb, name, tags={k: str(v) for k, v in (tags or {}).items()}, phase=phase,
            meter=meter, ts_ns=time.time_ns(), msg_id=msg_id, secret=self.secret)
        return self.exchange(data, msg_id)

    def exchange(self, data: bytes, msg_id: str) -> wire.Reply:
        deadline = time.monotonic() + self.timeout_s
        backoff = Backoff(FIRST_RETRY_S, max_s=float("inf"), jitter=0.0)  # the deadline caps it
        sends = 0
        refused = False
        while True:
            now = time.monotonic()
            if now >= deadline:
                why = " (connection refused: is the daemon listening?)" if refused else ""
                raise NoReplyError(f"no reply from {self.address[0]!s} port {self.address[1]!s} "
                                   f"after {sends} sends in {self.timeout_s:g} s{why}")
            if sends <= self.retries:
                try:
                    self._sock.send(data)
                except OSError:
                    refused = True
                sends += 1
                next_send = now + backoff.next_delay()
                until = min(next_send, deadline) if sends <= self.retries else deadline
            else:
                until = deadline
            reply = self._receive(msg_id, until)
            if reply is not None:
                return reply
            refused = refused or self._refused
            self._refused = False

    def _receive(self, msg_id: str, until: float) -> wire.Reply | None:
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65535)
            except TimeoutError:
                return None
            except ConnectionRefusedError:
                # ICMP port unreachable: nothing listens (yet); keep the schedule.
                self._refused = True
                time.sleep(max(0.0, min(until - time.monotonic(), 0.05)))
                continue
            except OSError:
                return None
            try:
                reply = wire.parse_reply(data)
            except MarkerInputError:
                continue
            if reply.msg_id == msg_id:
                return reply


def send_marker(verb: str, name: str | None = None, *, to: str | None = None,
                secret: bytes | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                retries: int = DEFAULT_RETRIES, tags: Mapping[str, object] | None = None,
                phase: str | None = None, meter: str | None = None) -> wire.Reply:
    """One message, one socket: what ``wattd mark`` does."""
    with MarkerClient(to, secret=secret, timeout_s=timeout_s, retries=retries) as client:
        return client.send(verb, name, tags=tags, phase=phase, meter=meter)
