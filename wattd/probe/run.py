"""The probe loop: read the selection, send one ``sample`` datagram per
interval (fire-and-forget), on a monotonic schedule."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

from wattd.markers import wire
from wattd.probe import procfs
from wattd.probe.ledger import ProcessLedger


def say(text: str) -> None:
    print(f"wattd probe: {text}", file=sys.stderr, flush=True)


class HostCpu:
    """Whole-machine CPU from /proc/stat: busy seconds (all cores) and the
    busy share since the previous read (100 = every core busy)."""

    def __init__(self, read: Callable[[], str] = lambda: procfs.read_text("/proc/stat")) -> None:
        self._read = read
        self._last: tuple[int, int] | None = None

    def read(self) -> tuple[float, float | None]:
        busy, total = procfs.parse_host_stat(self._read())
        pct = None
        if self._last is not None and total > self._last[1]:
            pct = 100.0 * (busy - self._last[0]) / (total - self._last[1])
        self._last = (busy, total)
        return busy / procfs.CLK_TCK, pct


class Cgroup:
    """A cgroup v2 directory: cpu.stat usage_usec, memory.current, cgroup.procs."""

    def __init__(self, path: str) -> None:
        self.path = path if os.path.isabs(path) else os.path.join("/sys/fs/cgroup", path)
        procfs.parse_cpu_stat(procfs.read_text(os.path.join(self.path, "cpu.stat")))
        self.has_memory = os.path.exists(os.path.join(self.path, "memory.current"))

    def read(self) -> tuple[float, int | None, int]:
        usage_us = procfs.parse_cpu_stat(procfs.read_text(os.path.join(self.path, "cpu.stat")))
        memory = None
        if self.has_memory:
            memory = int(procfs.read_text(os.path.join(self.path, "memory.current")).strip())
        procs = procfs.read_text(os.path.join(self.path, "cgroup.procs"), 1 << 20).count("\n")
        return usage_us / 1e6, memory, procs


def _memory_used() -> int | None:
    try:
        return procfs.parse_meminfo_used(procfs.read_text("/proc/meminfo"))
    except (OSError, KeyError, ValueError):
        return None


class ProbeOptions:
    def __init__(self, host: str, target: str, meter: str | None = None,
                 interval_s: float = 0.5, seconds: float | None = None) -> None:
        self.host = host
        self.target = target
        self.meter = meter
        self.interval_s = interval_s
        self.seconds = seconds


class Probe:
    def __init__(self, opts: ProbeOptions, to: tuple[str, int], secret: bytes | None, *,
                 ledger: ProcessLedger | None = None, cgroup: Cgroup | None = None) -> None:
        self.opts = opts
        self.secret = secret
        self.ledger = ledger
        self.cgroup = cgroup
        self.host_cpu = HostCpu()
        infos = socket.getaddrinfo(to[0], to[1], type=socket.SOCK_DGRAM)
        family, kind, proto, _, sockaddr = infos[0]
        self.sock = socket.socket(family, kind, proto)
        self.sock.connect(sockaddr)
        self.sent = 0
        self.send_errors = 0
        self._id_prefix = os.urandom(4).hex()
        self._last: tuple[float, float] | None = None  # (monotonic s, cpu_s)
        self._told_empty = False

    def fields(self) -> dict[str, str]:
        """Read everything once; the sample's key=value pairs."""
        host_s, host_pct = self.host_cpu.read()
        values: dict[str, float] = {}
        if self.cgroup is not None:
            cpu_s, memory, procs = self.cgroup.read()
            if memory is not None:
                values["rss_bytes"] = memory
            values["procs"] = procs
        elif self.ledger is not None:
            reading = self.ledger.read()
            for pid, comm in reading.exited:
                say(f"pid {pid} ({comm}) exited; its CPU time stays counted")
            if not reading.procs and not self._told_empty:
                say("no probed process is running now; cpu_s holds until one appears")
            self._told_empty = not reading.procs
            cpu_s = reading.cpu_s
            values["rss_bytes"] = reading.rss_bytes
            values["procs"] = reading.procs
        else:
            cpu_s = host_s
            used = _memory_used()
            if used is not None:
                values["rss_bytes"] = used
        now = time.monotonic()
        values["cpu_s"] = cpu_s
        if self._last is not None and now > self._last[0]:
            values["cpu_pct"] = 100.0 * (cpu_s - self._last[1]) / (now - self._last[0])
        self._last = (now, cpu_s)
        if host_pct is not None:
            values["host_cpu_pct"] = host_pct
        out = {k: (str(int(v)) if k in ("procs", "rss_bytes") else f"{v:.6g}" if k.endswith(
            "_pct") else f"{v:.6f}") for k, v in values.items()}
        out["target"] = self.opts.target
        return out

    def send(self, fields: dict[str, str]) -> None:
        self.sent += 1
        data = wire.format_message("sample", self.opts.host, tags=fields, meter=self.opts.meter,
                                   ts_ns=time.time_ns(), msg_id=f"{self._id_prefix}{self.sent:x}",
                                   secret=self.secret)
        try:
            self.sock.send(data)
        except OSError:  # no daemon (ICMP refused), no route: a gap, counted
            self.send_errors += 1

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        interval = self.opts.interval_s
        start = time.monotonic()
        deadline = None if self.opts.seconds is None else start + self.opts.seconds
        tick = 0
        while not stop():
            self.send(self.fields())
            tick += 1
            next_at = start + tick * interval
            now = time.monotonic()
            if next_at < now:  # fell behind (suspended): skip, never burst
                tick = int((now - start) / interval) + 1
                next_at = start + tick * interval
            if deadline is not None and next_at > deadline:
                return
            time.sleep(next_at - now if next_at > now else 0)

    def close(self) -> None:
        self.sock.close()
