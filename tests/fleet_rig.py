"""Several real daemons on one machine, each with its own simulated meter,
delivering to one real InfluxDB and one real VictoriaMetrics (SPEC 10 tests)."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.daemon_proc import DaemonProc, journal_points, write_config
from tests.ports import free_port
from tests.servers import InfluxDB1, VictoriaMetrics


def wattd(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattd", *args], capture_output=True,
                          text=True, timeout=timeout_s, check=False)


class Fleet:
    """``n`` daemons: meter ``pi<i>`` (host tag ``host<i>``) drawing ``powers[i]`` W,
    each delivering to InfluxDB database ``db`` and to VictoriaMetrics (v1 API,
    label ``db=<db>``), with its own unicast marker port and, when ``markers``
    is given, those marker settings (multicast) on top."""

    def __init__(self, tmp: Path, influx: InfluxDB1, victoria: VictoriaMetrics, db: str,
                 powers: list[float], *, markers: dict[str, Any] | None = None,
                 prometheus: bool = False) -> None:
        self.tmp = tmp
        self.influx = influx
        self.victoria = victoria
        self.db = db
        self.powers = powers
        self.marker_ports = [free_port("udp") for _ in powers]
        self.metrics_ports = [free_port() for _ in powers] if prometheus else []
        self.daemons: list[DaemonProc] = []
        self._stack = ExitStack()
        self._markers = markers or {}

    def meter(self, i: int) -> str:
        return f"pi{i + 1}"

    def __enter__(self) -> Fleet:
        for i, power in enumerate(self.powers):
            home = self.tmp / f"d{i + 1}"
            home.mkdir()
            sections: dict[str, Any] = {
                "markers": {"listen": [f"127.0.0.1:{self.marker_ports[i]}"], **self._markers},
                "influxdb": [
                    {"url": self.influx.url, "api": "v1", "database": self.db,
                     "flush_interval_s": 0.2, "name": "influx"},
                    {"url": self.victoria.url, "api": "v1", "database": self.db,
                     "flush_interval_s": 0.2, "name": "victoria"}],
            }
            if self.metrics_ports:
                sections["prometheus"] = {"listen": f"127.0.0.1:{self.metrics_ports[i]}"}
            cfg = write_config(home, [{"name": self.meter(i), "driver": "gb202",
                                       "port": "/dev/none", "power_w": power,
                                       "tags": {"host": f"host{i + 1}"}}], **sections)
            self.daemons.append(self._stack.enter_context(DaemonProc(cfg)))
        return self

    def __exit__(self, *exc: object) -> None:
        for daemon in self.daemons:
            daemon.stop()
        self._stack.close()

    def wait_readings(self, timeout_s: float = 60.0) -> None:
        """A few readings journaled by every daemon (a run then has its bracket)."""
        for i, daemon in enumerate(self.daemons):
            journal = self.tmp / f"d{i + 1}" / "journal"
            daemon.wait_until(lambda j=journal: len(journal_points(j, "wattd_power")) >= 5,
                              timeout_s, what=f"daemon {i + 1} readings")

    def wait_delivered(self, run: str, timeout_s: float = 60.0) -> None:
        """Every daemon's wattd_run point of ``run`` is in both databases."""
        deadline = time.monotonic() + timeout_s
        want = len(self.powers)
        while time.monotonic() < deadline:
            rows = self.influx.rows(self.db, "wattd_run", f"\"run\" = '{run}'") \
                if self._has_runs() else []
            vm = self.victoria.samples(f'wattd_run_energy_j{{db="{self.db}",run="{run}"}}')
            if len(rows) >= want and len(vm) >= want:
                return
            time.sleep(0.2)
        raise AssertionError(f"wattd_run of {run} not delivered by all {want} daemons")

    def _has_runs(self) -> bool:
        res = self.influx.query('SHOW MEASUREMENTS', self.db)["results"][0]
        names = [v[0] for s in res.get("series", []) for v in s["values"]]
        return "wattd_run" in names


def reply_energy(line: str) -> float:
    return float(line.split("energy_j=", 1)[1].split(maxsplit=1)[0])


def report_json(*source: str) -> dict[str, Any]:
    out = wattd("report", *source, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _group_socket(group: str) -> socket.socket:
    host, port = group.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, int(port)))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    struct.pack("4s4s", socket.inet_aton(host), socket.inet_aton("127.0.0.1")))
    return sock


def duplicate_event(group: str, secret: bytes, run: str, copies: int,
                    gap_s: float = 0.5, wait_s: float = 1.5) -> dict[str, list[bytes]]:
    """Send one signed `event` datagram ``copies`` times, ``gap_s`` apart, to the
    group; the replies per replier ("addr:port"). (A copy arriving while the first
    is being journaled gets no reply of its own: its sender is answered once.)"""
    from wattd.markers import wire

    host, port = group.rsplit(":", 1)
    data = wire.format_message("event", run, tags={}, ts_ns=time.time_ns(), msg_id="dup-1",
                               secret=secret)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    replies: dict[str, list[bytes]] = {}
    try:
        sends = [time.monotonic() + i * gap_s for i in range(copies)]
        deadline = sends[-1] + wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            if sends and time.monotonic() >= sends[0]:
                sends.pop(0)
                sock.sendto(data, (host, int(port)))
                continue
            if sends:
                remaining = min(remaining, sends[0] - time.monotonic())
            sock.settimeout(max(remaining, 0.001))
            try:
                payload, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            replies.setdefault(f"{addr[0]}:{addr[1]}", []).append(payload)
    finally:
        sock.close()
    return replies


class FakeReplier:
    """A stranger on 127.0.0.2 in the group, answering every message at once with
    a forged `ok stop ... energy_j=1000000` carrying the message's id."""

    def __init__(self, group: str) -> None:
        self.group_sock = _group_socket(group)
        self.group_sock.settimeout(0.2)
        self.reply_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.reply_sock.bind(("127.0.0.2", 0))
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.group_sock.recvfrom(2048)
            except TimeoutError:
                continue
            fields = dict(t.split("=", 1) for t in data.decode().split()[2:] if "=" in t)
            name = data.decode().split()[1]
            reply = f"ok stop {name} energy_j=1000000 duration_s=1 id={fields.get('id')}"
            self.reply_sock.sendto(reply.encode(), addr)
            self.answered += 1

    def __enter__(self) -> FakeReplier:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.group_sock.close()
        self.reply_sock.close()
