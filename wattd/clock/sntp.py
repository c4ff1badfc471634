"""A minimal SNTP client (RFC 4330): one query, offset and round-trip delay.

The packet code is pure (``build_request`` / ``parse_reply``); ``query`` is the
thin UDP transport. Standard four-timestamp formulas (T1 client send, T2
server receive, T3 server send, T4 client receive):

    offset = ((T2 - T1) + (T3 - T4)) / 2      (server clock minus ours)
    delay  = (T4 - T1) - (T3 - T2)

The request's transmit timestamp is a random nonce (as chrony does): the
server copies it to the reply's originate field, which proves the reply
answers our request; T1 itself is kept locally.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.netaddr import resolver_host, split_host_port

NTP_PORT = 123
NTP_PACKET = struct.Struct("!BBbb II 4s QQQQ")  # 48 bytes
NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01
ERA_S = 1 << 32
MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_ALARM = 3


class SntpError(Exception):
    """No usable answer (timeout, bad packet, unsynchronised server, kiss-o'-death)."""


@dataclass(slots=True, frozen=True)
class SntpResult:
    server: str
    offset_ns: int
    delay_ns: int
    stratum: int
    leap: int
    ref_id: str
    version: int

    @property
    def offset_ms(self) -> float:
        return self.offset_ns / 1e6

    @property
    def delay_ms(self) -> float:
        return self.delay_ns / 1e6


def ntp_to_unix_ns(ntp: int, near_unix_ns: int) -> int:
    """A 64-bit NTP timestamp to Unix ns, in the NTP era nearest to ``near_unix_ns``
    (so it keeps working after the 2036 era rollover, RFC 4330 section 3)."""
    seconds, fraction = ntp >> 32, ntp & 0xFFFFFFFF
    near_s = near_unix_ns // 1_000_000_000 + NTP_UNIX_OFFSET_S
    era = (near_s - seconds + ERA_S // 2) // ERA_S
    total_s = seconds + era * ERA_S - NTP_UNIX_OFFSET_S
    return total_s * 1_000_000_000 + (fraction * 1_000_000_000 >> 32)


def unix_ns_to_ntp(unix_ns: int) -> int:
    seconds, ns = divmod(unix_ns, 1_000_000_000)
    return (((seconds + NTP_UNIX_OFFSET_S) % ERA_S) << 32) | ((ns << 32) // 1_000_000_000)


def build_request(nonce: int, version: int = 4) -> bytes:
    """A client request whose transmit timestamp is ``nonce`` (64 bits)."""
    first = (0 << 6) | (version << 3) | MODE_CLIENT
    return NTP_PACKET.pack(first, 0, 0, 0, 0, 0, b"\0\0\0\0", 0, 0, 0, nonce)


def parse_reply(data: bytes, nonce: int, t1_ns: int, t4_ns: int,
                server: str = "") -> SntpResult:
    """Validate a server reply (RFC 4330 section 5) and compute offset and delay."""
    if len(data) < NTP_PACKET.size:
        raise SntpError(f"short reply ({len(data)} bytes)")
    (first, stratum, _poll, _precision, _root_delay, _root_disp, ref_id_raw,
     _ref_ts, originate, receive, transmit) = NTP_PACKET.unpack_from(data)
    leap, version, mode = first >> 6, (first >> 3) & 7, first & 7
    if mode != MODE_SERVER:
        raise SntpError(f"not a server reply (mode {mode})")
    if not 1 <= version <= 4:
        raise SntpError(f"unsupported NTP version {version}")
    if originate != nonce:
        raise SntpError("reply does not answer our request (originate timestamp mismatch)")
    if stratum == 0:
        code = ref_id_raw.decode("ascii", "replace").strip("\0")
        raise SntpError(f"kiss-o'-death from server: {code or 'unspecified'}")
    if leap == LEAP_ALARM or stratum > 15:
        raise SntpError("server is not synchronised (leap alarm / stratum 16)")
    if transmit == 0 or receive == 0:
        raise SntpError("reply carries a zero timestamp")
    t2 = ntp_to_unix_ns(receive, t1_ns)
    t3 = ntp_to_unix_ns(transmit, t4_ns)
    offset = ((t2 - t1_ns) + (t3 - t4_ns)) // 2
    delay = (t4_ns - t1_ns) - (t3 - t2)
    if stratum == 1:
        ref_id = ref_id_raw.decode("ascii", "replace").strip("\0")
    else:
        ref_id = ".".join(str(b) for b in ref_id_raw)
    return SntpResult(server, offset, delay, stratum, leap, ref_id, version)


def parse_server(text: str) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port)."""
    return split_host_port(text, NTP_PORT)


def query(host: str, port: int = NTP_PORT, *, timeout_s: float = 2.0, attempts: int = 2,
          clock: Clock = SYSTEM_CLOCK) -> SntpResult:
    """One SNTP exchange (retried on timeout). Raises SntpError."""
    try:
        infos = socket.getaddrinfo(resolver_host(host), port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise SntpError(f"cannot resolve {host}: {exc}") from None
    family, _, _, _, address = infos[0]
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    last = "no reply"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(address)
        except OSError as exc:
            raise SntpError(f"{label}: {exc}") from None
        for _ in range(max(1, attempts)):
            nonce = int.from_bytes(os.urandom(8), "big") or 1
            request = build_request(nonce)
            try:
                t1 = clock.realtime_ns()
                sock.send(request)
                while True:
                    data = sock.recv(512)
                    t4 = clock.realtime_ns()
                    try:
                        return parse_reply(data, nonce, t1, t4, label)
                    except SntpError as exc:
                        # a stray or stale datagram: keep listening for the real answer,
                        # unless the server itself said no
                        last = str(exc)
                        if "mismatch" not in last:
                            raise SntpError(f"{label}: {last}") from None
            except TimeoutError:
                last = f"no reply within {timeout_s:g} s"
            except OSError as exc:  # e.g. ICMP port unreachable -> ConnectionRefusedError
                last = str(exc)
    raise SntpError(f"{label}: {last}")
