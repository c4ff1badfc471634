"""Multicast markers, the client side (SPEC 10): one message to a group, one
reply per daemon.

Replies are keyed by their source address and port (each daemon answers from
a socket of its own). Until the expected daemons have answered or the time
is up, the identical datagram (same ``id``, ``ts`` and mac) is sent again:
it reaches every member, and the daemons that already handled it answer with
their first reply and change nothing (de-duplication), while one that missed
it now acts. Import-light like :mod:`wattd.markers.client` (no dataclasses, no
ipaddress unless --allow is given).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from typing import Any

from wattd.errors import MarkerInputError, UsageError
from wattd.markers import wire
from wattd.markers.client import FIRST_RETRY_S, new_id, parse_target

RECV_BUFFER_BYTES = 1 << 20


class Expectation:
    """How many daemons must answer, and (when listed: "ADDR" or "ADDR:PORT") which."""

    def __init__(self, count: int = 1, hosts: list[str] | None = None) -> None:
        self.count = count
        self.hosts = hosts or []

    @classmethod
    def parse(cls, text: str | None) -> Expectation:
        if text is None:
            return cls()
        if text.isdigit():
            if int(text) < 1:
                raise UsageError("--expect must be >= 1")
            return cls(int(text))
        hosts = [h.strip() for h in text.split(",") if h.strip()]
        if not hosts:
            raise UsageError("--expect takes a count N or a list ADDR[:PORT],...")
        return cls(len(hosts), hosts)

    def matches(self, expected: str, addr: tuple[str, int]) -> bool:
        return expected in (addr[0], f"{addr[0]}:{addr[1]}")

    def missing(self, replied: dict[tuple[str, int], wire.Reply]) -> list[str]:
        return [h for h in self.hosts if not any(self.matches(h, a) for a in replied)]


class FanoutResult:
    def __init__(self, replies: dict[tuple[str, int], wire.Reply], ignored: int,
                 sends: int) -> None:
        self.replies = replies
        self.ignored = ignored  # replies from sources outside --allow
        self.sends = sends

    @property
    def ok(self) -> list[tuple[tuple[str, int], wire.Reply]]:
        return [(a, r) for a, r in self.replies.items() if r.ok]


class AllowList:
    def __init__(self, cidrs: list[str]) -> None:
        self.nets: list[Any] = []
        if cidrs:
            import ipaddress

            for cidr in cidrs:
                try:
                    self.nets.append(ipaddress.ip_network(cidr, strict=False))
                except ValueError:
                    raise UsageError(f"--allow: not a CIDR network: {cidr!r}") from None

    def __call__(self, source: str) -> bool:
        if not self.nets:
            return True
        import ipaddress

        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(address in net for net in self.nets)


def open_sender(group: str, interface: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # one LAN
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # daemons on this host
    # Hundreds of replies can arrive at once; what the buffer drops comes back
    # with the next retransmission (answered again from each daemon's dedup cache).
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
    if interface:
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(interface))
            sock.bind((interface, 0))
        except OSError as exc:
            sock.close()
            raise UsageError(f"--interface {interface}: {exc.strerror or exc}") from None
    return sock


def collect(sock: socket.socket, data: bytes, msg_id: str, target: tuple[str, int], *,
            expect: Expectation, allow: AllowList, timeout_s: float,
            retries: int) -> FanoutResult:
    """Send, retransmit, and gather one reply per source until ``expect`` is met."""
    deadline = time.monotonic() + timeout_s
    wait_s = FIRST_RETRY_S
    next_send = time.monotonic()
    sends = 0
    ignored = 0
    replies: dict[tuple[str, int], wire.Reply] = {}

    def done() -> bool:
        if expect.hosts:
            return not expect.missing(replies)
        return len(replies) >= expect.count and all(r.code != "rate" for r in replies.values())

    while not done():
        now = time.monotonic()
        if now >= deadline:
            break
        if sends <= retries and now >= next_send:
            try:
                sock.sendto(data, target)
            except OSError as exc:
                raise UsageError(f"cannot send to {target[0]}:{target[1]}: "
                                 f"{exc.strerror or exc}") from None
            sends += 1
            next_send = now + wait_s
            wait_s *= 2
        until = min(deadline, next_send) if sends <= retries else deadline
        sock.settimeout(max(0.001, until - time.monotonic()))
        try:
            payload, addr = sock.recvfrom(65535)
        except (TimeoutError, BlockingIOError):
            continue
        except OSError:
            continue
        source = (str(addr[0]), int(addr[1]))
        try:
            reply = wire.parse_reply(payload)
        except MarkerInputError:
            continue
        if reply.msg_id != msg_id:
            continue
        if not allow(source[0]):
            ignored += 1
            continue
        previous = replies.get(source)
        if previous is None or previous.code == "rate":  # a rate-limited one may act later
            replies[source] = reply
    return FanoutResult(replies, ignored, sends)


def reply_text(reply: wire.Reply) -> str:
    if not reply.ok:
        return f"error {reply.code} {reply.text}"
    parts = ["ok", reply.verb or ""]
    if reply.name:
        parts.append(reply.name)
    parts += [f"{k}={v}" for k, v in reply.fields.items()]
    return " ".join(parts)


def stop_total(result: FanoutResult) -> str:
    """``total energy_j=... meters=... daemons=...`` over the ok stop replies.
    A meter without readings (``no_readings=``) leaves the total unknown: the
    line then has no ``energy_j`` and names those meters in ``no_readings=``."""
    energy = 0.0
    meters = 0
    missing: list[str] = []
    for _, reply in result.ok:
        per_meter = [k for k in reply.fields if k.startswith("energy_j.")]
        silent = reply.no_readings
        missing += silent
        meters += len(per_meter) + len(silent) if per_meter else max(1, len(silent))
        if "energy_j" in reply.fields:
            energy += float(reply.fields["energy_j"])
        elif not silent:
            energy = float("nan")
    if missing:
        return (f"total meters={meters} daemons={len(result.ok)} "
                f"no_readings={wire.join_meters(missing)}")
    return f"total energy_j={energy:.9g} meters={meters} daemons={len(result.ok)}"


def execute(args: Any, tags: dict[str, object], secret: bytes | None, *,
            to: str | None = None) -> int:
    """``wattd mark ... --to GROUP:PORT``: print every reply, prefixed by its sender."""
    try:
        host, port = parse_target(args.to if to is None else to)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    expect = Expectation.parse(args.expect)
    allow = AllowList(list(args.allow or []))
    msg_id = new_id()
    try:
        data = wire.format_message(
            args.verb, args.name, tags={k: str(v) for k, v in tags.items()}, phase=args.phase,
            meter=args.meter, ts_ns=time.time_ns(), msg_id=msg_id, secret=secret)
    except MarkerInputError as exc:
        raise UsageError(str(exc.detail or exc)) from None
    sock = open_sender(host, args.interface)
    try:
        result = collect(sock, data, msg_id, (host, port), expect=expect, allow=allow,
                         timeout_s=args.timeout, retries=args.retries)
    finally:
        sock.close()
    for (addr, rport), reply in sorted(result.replies.items()):
        print(f"{addr}:{rport} {reply_text(reply)}")
    if args.verb == "stop" and result.ok:
        print(stop_total(result))
    if result.ignored:
        print(f"wattd mark: ignored {result.ignored} reply(ies) from outside --allow",
              file=sys.stderr)
    n_ok = len(result.ok)
    if n_ok >= expect.count and not expect.missing(result.replies):
        return 0
    missing = expect.missing(result.replies)
    what = f"missing: {', '.join(missing)}" if missing else \
        f"{expect.count - len(result.replies)} never answered" \
        if len(result.replies) < expect.count else "some refused"
    print(f"wattd mark: {n_ok} of {expect.count} daemon(s) answered ok within "
          f"{args.timeout:g} s after {result.sends} send(s) to {host}:{port} ({what})",
          file=sys.stderr)
    return 1
