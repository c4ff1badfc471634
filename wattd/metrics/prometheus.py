"""Prometheus ``/metrics`` (SPEC 10): a small HTTP endpoint and a collector.

Nothing runs on the reading path: at scrape time the collector calls one
narrow callable that returns a :class:`Snapshot` of the daemon's state and
turns it into metric families. A value that was not measured (no reading yet,
an unreadable journal backlog) is left out, never exported as 0.

The HTTP side is a few lines of asyncio on purpose: the same loopback /
allow-list rule as the marker port (a peer outside the list gets 403), and
no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wattd.config import PrometheusConfig, parse_listen
from wattd.errors import ConfigError
from wattd.logsetup import get_logger

log = get_logger("wattd.metrics")

DEFAULT_PORT = 9289
MAX_HEADER_BYTES = 8192
READ_TIMEOUT_S = 5.0

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class MeterSample:
    """The latest state of one meter (None: not measured)."""

    power_w: float | None = None
    energy_j: float | None = None
    voltage_v: float | None = None
    frames_ok: int | None = None
    frames_bad: int | None = None


@dataclass(slots=True)
class Snapshot:
    meters: dict[str, MeterSample] = field(default_factory=dict)
    open_runs: list[tuple[str, str]] = field(default_factory=list)  # (meter, run)
    last_run_energy_j: dict[str, tuple[str, float]] = field(default_factory=dict)
    backlog_bytes: dict[str, int] = field(default_factory=dict)  # sink -> bytes
    clock_synced: bool | None = None


SnapshotFn = Callable[[], Snapshot]


class SnapshotCollector:
    """A prometheus-client collector over :data:`SnapshotFn` (called per scrape)."""

    def __init__(self, snapshot: SnapshotFn) -> None:
        self.snapshot = snapshot

    def describe(self) -> list[Any]:
        return []  # unchecked collector: families depend on the snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.snapshot()
        power = GaugeMetricFamily("wattd_power_watts", "Latest active power reading",
                                  labels=["meter"])
        energy = CounterMetricFamily("wattd_energy_joules", "Energy measured since the "
                                     "daemon started", labels=["meter"])
        voltage = GaugeMetricFamily("wattd_voltage_volts", "Latest RMS voltage reading",
                                    labels=["meter"])
        frames = CounterMetricFamily("wattd_frames", "Meter frames decoded (ok) or dropped "
                                     "(bad)", labels=["meter", "result"])
        for name, m in sorted(snap.meters.items()):
            if m.power_w is not None:
                power.add_metric([name], m.power_w)
            if m.energy_j is not None:
                energy.add_metric([name], m.energy_j)
            if m.voltage_v is not None:
                voltage.add_metric([name], m.voltage_v)
            if m.frames_ok is not None:
                frames.add_metric([name, "ok"], m.frames_ok)
            if m.frames_bad is not None:
                frames.add_metric([name, "bad"], m.frames_bad)
        run_open = GaugeMetricFamily("wattd_run_open", "1 while the run is open on the meter",
                                     labels=["meter", "run"])
        for meter, run in snap.open_runs:
            run_open.add_metric([meter, run], 1.0)
        last_run = GaugeMetricFamily("wattd_last_run_energy_joules", "Energy of the last run "
                                     "closed on the meter", labels=["meter", "run"])
        for meter, (run, energy_j) in sorted(snap.last_run_energy_j.items()):
            last_run.add_metric([meter, run], energy_j)
        backlog = GaugeMetricFamily("wattd_journal_backlog_bytes", "Journal bytes not yet "
                                    "delivered to the sink", labels=["sink"])
        for sink, size in sorted(snap.backlog_bytes.items()):
            backlog.add_metric([sink], float(size))
        yield from (power, energy, voltage, frames, run_open, last_run, backlog)
        if snap.clock_synced is not None:
            yield GaugeMetricFamily("wattd_clock_synced", "1 when the kernel reports the "
                                    "clock synchronised", value=float(snap.clock_synced))


def check_prometheus_listen(cfg: PrometheusConfig) -> tuple[str, int, list[IPNetwork]]:
    """(host, port, allow networks); a non-loopback address needs ``allow``."""
    key = "prometheus.listen"
    try:
        host, port = parse_listen(cfg.listen, DEFAULT_PORT)
    except ValueError as exc:
        raise ConfigError(str(exc), key=key) from None
    nets: list[IPNetwork] = []
    for item in cfg.allow:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"not a CIDR network: {item!r}", key="prometheus.allow") from None
    loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    if not loopback and not nets:
        raise ConfigError(f"serving metrics on non-loopback address {cfg.listen!r} needs "
                          "prometheus.allow (CIDR list of the scrapers)", key=key)
    return host, port, nets


def peer_allowed(peer: str, nets: list[IPNetwork]) -> bool:
    """Loopback always; others only inside ``nets`` (the marker port's rule)."""
    peer = peer.removeprefix("::ffff:")
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or any(address in net for net in nets)


class PrometheusEndpoint:
    """Daemon component: ``start()`` binds, ``stop()`` closes, ``status()`` counts."""

    def __init__(self, cfg: PrometheusConfig, snapshot: SnapshotFn) -> None:
        from prometheus_client import CollectorRegistry

        self.host, self.port, self.allow = check_prometheus_listen(cfg)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(snapshot))
        self.counters = {"scrapes": 0, "forbidden": 0, "not_found": 0, "bad_requests": 0,
                         "errors": 0}
        self.address: tuple[str, int] | None = None
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {self.host}:{self.port}: "
                              f"{exc.strerror}", key="prometheus.listen") from None
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        log.info("prometheus_listening", address=f"{self.address[0]}:{self.address[1]}",
                 allow=[str(n) for n in self.allow])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def status(self) -> dict[str, Any]:
        where = None if self.address is None else f"{self.address[0]}:{self.address[1]}"
        return {"listen": where, **self.counters}

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peername")
            allowed = peer_allowed(str(peer[0]) if peer else "", self.allow)
            # The request head is read even from a refused peer (bounded in time and
            # size): closing on unread bytes would reset the connection and lose the 403.
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                head = b""
            if not allowed:
                self.counters["forbidden"] += 1
                await self._answer(writer, 403, b"forbidden\n")
                return
            if not head:
                self.counters["bad_requests"] += 1
                await self._answer(writer, 400, b"bad request\n")
                return
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
                self.counters["bad_requests"] += 1
                await self._answer(writer, 400, b"bad request\n")
                return
            path = parts[1].split(b"?", 1)[0]
            if path != b"/metrics":
                self.counters["not_found"] += 1
                await self._answer(writer, 404, b"only /metrics here\n")
                return
            self.counters["scrapes"] += 1
            body = self.render()
            await self._answer(writer, 200, body, head_only=parts[0] == b"HEAD",
                               content_type="text/plain; version=0.0.4; charset=utf-8")
        except Exception:  # a scrape must never take the daemon down
            self.counters["errors"] += 1
            log.exception("prometheus_scrape_failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, code: int, body: bytes, *,
                      head_only: bool = False,
                      content_type: str = "text/plain; charset=utf-8") -> None:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}[code]
        head = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(head if head_only else head + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
