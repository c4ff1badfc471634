"""Several real daemons on one machine, each with its own simulated meter,
delivering to one real InfluxDB and one real VictoriaMetrics (SPEC 10 tests)."""

from __future__ import annotations

import json
import subprocess
import sys
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
