"""A `wattd run` subprocess rig for the soak (bench/soak.py) and the fault suite
(tests/fault_scenarios.py): config in a temp dir, markers on a free loopback UDP
port, start / SIGTERM / SIGKILL by pid, `status` over real UDP, and counts of
what the journal and VictoriaMetrics hold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.ports import free_port
from wattd.journal.reader import iter_lines
from wattd.lineprotocol import Point, parse_line
from wattd.markers.client import MarkerClient, NoReplyError

ROOT = Path(__file__).resolve().parent.parent


def free_udp_port() -> int:
    return free_port("udp")


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str,
             interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class DaemonRig:
    """`python -m wattd run -c CONFIG [--simulate [--unpaced]]`, restartable; the log
    file is appended to across restarts. Every process it starts is stopped by pid."""

    def __init__(self, tmp: Path, meters: list[dict[str, Any]], *, simulate: bool = False,
                 unpaced: bool = False, influxdb: list[dict[str, Any]] | None = None,
                 journal: dict[str, Any] | None = None, markers: dict[str, Any] | None = None,
                 clock: dict[str, Any] | None = None, log_level: str = "warning") -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.to = f"127.0.0.1:{self.port}"
        self.journal_dir = tmp / "journal"
        self.simulate = simulate
        self.unpaced = unpaced
        cfg: dict[str, Any] = {
            "meters": meters,
            "markers": {"listen": [self.to], **(markers or {})},
            "journal": {"dir": str(self.journal_dir), **(journal or {})},
            "log": {"format": "json", "level": log_level},
        }
        if influxdb:
            cfg["influxdb"] = influxdb
        if clock:
            cfg["clock"] = clock
        self.config_path = tmp / "wattd.yaml"
        self.config_path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
        self.log_path = tmp / "wattd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        args = [sys.executable, "-m", "wattd", "run", "-c", str(self.config_path)]
        if self.simulate:
            args.append("--simulate")
        if self.unpaced:
            args.append("--unpaced")
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "STATE_DIRECTORY", "WATTD_MARKER")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=ROOT, stdin=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"wattd exited ({self.proc.returncode}) at start:\n"
                                     f"{self.log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"wattd not answering after {timeout_s:g} s:\n"
                                     f"{self.log_tail()}")

    def ping(self) -> bool:
        try:
            with MarkerClient(self.to, timeout_s=0.5, retries=1) as client:
                return client.send("ping").ok
        except NoReplyError:
            return False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL by pid: no shutdown code runs."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM by pid (journal flushed, bounded delivery); SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def __enter__(self) -> DaemonRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def log_tail(self, n_bytes: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n_bytes:].decode("utf-8", "replace")
        except OSError:
            return ""

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    # -- talking to it ---------------------------------------------------------------
    def client(self, timeout_s: float = 15.0) -> MarkerClient:
        return MarkerClient(self.to, timeout_s=timeout_s)

    def status(self, timeout_s: float = 10.0) -> dict[str, Any]:
        with MarkerClient(self.to, timeout_s=timeout_s) as client:
            reply = client.send("status")
        if not reply.ok or reply.status is None:
            raise AssertionError(f"status refused: {reply}")
        return dict(reply.status)

    def readings_written(self) -> int:
        return int(self.status()["pipeline"]["readings_written"])

    def sink_backlog_bytes(self) -> int:
        sinks = self.status().get("sinks", {})
        return sum(int(s["backlog_bytes"]) for s in sinks.values())


# -- what the journal and the database hold ------------------------------------------

def journal_readings(journal_dir: Path, field: str = "power_w") -> dict[str, array[int]]:
    """Timestamps (ns) of the wattd_power points that carry ``field``, per meter, in
    journal order: the points `victoria_readings` finds in that field's series (a
    reading taken before the chip's first power refresh has no power_w). String
    slicing, not a full parse: fast enough for millions of lines."""
    out: dict[str, array[int]] = {}
    probe = f"{field}="
    for _, line in iter_lines(journal_dir):
        if not line.startswith("wattd_power,"):
            continue
        head, _, t_text = line.rpartition(" ")
        tags, _, fields = head.partition(" ")
        if not (fields.startswith(probe) or f",{probe}" in fields):
            continue
        at = tags.index(",meter=") + 7
        end = tags.find(",", at)
        meter = tags[at:] if end < 0 else tags[at:end]
        out.setdefault(meter, array("q")).append(int(t_text))
    return out


def journal_count(journal_dir: Path, prefix: str = "wattd_power,") -> int:
    """Lines of one measurement, without parsing them."""
    return sum(1 for _, line in iter_lines(journal_dir) if line.startswith(prefix))


def journal_points(journal_dir: Path, measurement: str) -> list[Point]:
    return [parse_line(line) for _, line in iter_lines(journal_dir)
            if line.startswith(measurement + ",")]


def journal_bytes(journal_dir: Path) -> int:
    """Bytes on disk under the journal directory while the daemon runs: a
    segment can be compressed and removed between listing and stat, so a
    file that vanished counts as gone (its .gz is listed or will be next)."""
    total = 0
    for root, _dirs, files in os.walk(journal_dir):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def victoria_readings(vm: Any, match: str = "wattd_power_power_w") -> dict[str, array[int]]:
    """Stored sample times (ms) per meter (VictoriaMetrics keeps ms, and duplicates)."""
    out: dict[str, array[int]] = {}
    for series in vm.export(match):
        meter = series["metric"].get("meter", "")
        out.setdefault(meter, array("q")).extend(int(t) for t in series["timestamps"])
    return out


def delivery_check(journal: dict[str, array[int]], stored: dict[str, array[int]]
                   ) -> dict[str, int]:
    """Journal readings vs database samples: `missing` (in the journal, not in the
    database) and `duplicated` (stored more often than journaled: a resent batch)."""
    missing = duplicated = 0
    for meter in set(journal) | set(stored):
        want = sorted(t // 1_000_000 for t in journal.get(meter, ()))
        have = sorted(stored.get(meter, ()))
        if want == have:
            continue
        diff_want: Counter[int] = Counter(want)
        diff_have: Counter[int] = Counter(have)
        missing += sum((diff_want - diff_have).values())
        duplicated += sum((diff_have - diff_want).values())
    return {"journal": sum(len(v) for v in journal.values()),
            "database": sum(len(v) for v in stored.values()),
            "missing": missing, "duplicated": duplicated}
