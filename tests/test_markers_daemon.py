"""End to end: `wattd run --simulate` as a subprocess, markers over real UDP
loopback sockets, results checked against the journal the daemon wrote."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ports import free_port
from wattd.energy import NS, integrate
from wattd.journal.reader import iter_lines
from wattd.lineprotocol import parse_line
from wattd.markers import wire
from wattd.markers.client import MarkerClient, NoReplyError, send_marker


def _free_port() -> int:
    return free_port("udp")


class Daemon:
    def __init__(self, tmp: Path, power: str) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.to = f"127.0.0.1:{self.port}"
        self.journal = tmp / "journal"
        self.config = tmp / "config.yaml"
        self.config.write_text(
            "meters:\n"
            f"  - name: sim\n    driver: simulated\n    {power}\n"
            f"markers:\n  listen: ['127.0.0.1:{self.port}']\n"
            f"journal:\n  dir: {self.journal}\n"
            "log:\n  format: json\n  level: warning\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.tmp / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wattd", "run", "-c", str(self.config), "--simulate"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, (self.tmp / "daemon.log").read_text()
            try:
                if send_marker("ping", to=self.to, timeout_s=0.5, retries=1).ok:
                    break
            except NoReplyError:
                pass
            assert time.monotonic() < deadline, "daemon not answering after 60 s:\n" + (
                self.tmp / "daemon.log").read_text()[-3000:]
        # Let readings flow (a start needs one to bracket it): about 1 s of them at the
        # chip's rate, however long a loaded machine takes to produce them.
        self.wait_until(lambda: self.meter_readings() >= 10, "10 readings")

    def meter_readings(self) -> int:
        with MarkerClient(self.to, timeout_s=10.0) as client:
            reply = client.send("status")
        assert reply.ok, reply
        assert reply.status is not None, reply
        return int(reply.status["meters"]["sim"]["readings"])

    def wait_until(self, predicate: Callable[[], bool], what: str,
                   timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s: {what}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def readings(self) -> list[tuple[int, float]]:
        out = []
        for _, line in iter_lines(self.journal):
            if line.startswith("wattd_power,"):
                point = parse_line(line)
                power = point.fields.get("power_w")
                if isinstance(power, float):
                    out.append((point.t_ns, power))
        return out

    def points(self, measurement: str) -> list[object]:
        return [parse_line(line) for _, line in iter_lines(self.journal)
                if line.startswith(measurement + ",")]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[type]:
    started: list[Daemon] = []

    def make(power: str = "power_w: 100.0") -> Daemon:
        daemon = Daemon(tmp_path, power)
        started.append(daemon)
        daemon.start()
        return daemon

    yield make  # type: ignore[misc]
    for daemon in started:
        daemon.stop()


def send_at(client: MarkerClient, verb: str, name: str, ts_ns: int, **kw: object) -> wire.Reply:
    """A marker carrying a back-dated sender ts."""
    msg_id = os.urandom(4).hex()
    return client.exchange(wire.format_message(verb, name, ts_ns=ts_ns, msg_id=msg_id,
                                               **kw), msg_id)  # type: ignore[arg-type]


def test_constant_power_phases_abort_busy_retransmission(daemon_factory: object) -> None:
    daemon = daemon_factory()  # type: ignore[operator]
    with MarkerClient(daemon.to) as client:
        assert client.send("start", "const", tags={"lang": "py"}).ok
        busy = client.send("start", "other")
        assert (busy.ok, busy.code) == (False, "busy")
        time.sleep(0.5)
        assert client.send("start", "const", phase="p1").ok
        time.sleep(0.5)
        assert client.send("start", "const", phase="p2").ok
        time.sleep(0.5)
        stop = client.send("stop", "const")
        assert stop.ok, stop
        assert client.send("start", "gone").ok
        assert client.send("abort", "gone").ok
        unknown = client.send("stop", "gone")
        assert (unknown.ok, unknown.code) == (False, "unknown")
    duration = stop.number("duration_s")
    assert abs(stop.number("energy_j") - 100.0 * duration) <= 0.005 * 100.0 * duration
    # Retransmission: the identical datagram twice, one effect, same reply.
    data = wire.format_message("event", "const", msg_id="dup1", ts_ns=time.time_ns())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(data, ("127.0.0.1", daemon.port))
        first = sock.recv(2048)
        sock.sendto(data, ("127.0.0.1", daemon.port))
        second = sock.recv(2048)
    assert first == second

    def journaled() -> bool:  # results at once; the run's readings after their hold-back
        runs = daemon.points("wattd_run")
        return (sum(p.tags["run"] == "const" for p in runs) >= 3
                and any(p.tags["run"] == "gone" for p in runs)
                and any(p.tags["verb"] == "event" for p in daemon.points("wattd_marker"))
                and sum(p.tags.get("run") == "const"
                        for p in daemon.points("wattd_power")) >= 10)

    daemon.wait_until(journaled, "the runs, the event and the run's readings journaled")
    runs = daemon.points("wattd_run")
    phases = sorted(p.tags.get("phase", "-") for p in runs if p.tags["run"] == "const")
    assert phases == ["-", "p1", "p2"]
    assert [p.fields.get("aborted") for p in runs if p.tags["run"] == "gone"] == [True]
    events = [p for p in daemon.points("wattd_marker") if p.tags["verb"] == "event"]
    assert len(events) == 1
    tagged = [p for p in daemon.points("wattd_power") if p.tags.get("run") == "const"]
    assert len(tagged) >= 10
    assert all(p.tags.get("lang") == "py" for p in tagged)


def test_step_profile_exact_integral_with_backdated_ts(daemon_factory: object,
                                                      tmp_path: Path) -> None:
    profile = tmp_path / "profile.csv"
    profile.write_text("0,20\n0.35,200\n0.7,loop\n")
    daemon = daemon_factory(f"profile: {profile}")  # type: ignore[operator]
    results = []
    with MarkerClient(daemon.to) as client:
        for i in range(4):
            now = time.time_ns()
            start_ts = now - 150_000_000  # back-dated: readings after it are already decoded
            start = send_at(client, "start", f"step{i}", start_ts)
            assert start.ok
            assert int(start.fields["start_ns"]) == start_ts  # the boundary used
            time.sleep(0.2)
            stop_ts = time.time_ns() - 100_000_000
            stop = send_at(client, "stop", f"step{i}", stop_ts)
            assert stop.ok, stop
            results.append((start_ts, stop_ts, stop.number("energy_j")))
            time.sleep(0.3)
    # The readings bracketing the last stop reach the journal after their hold-back.
    last_stop = results[-1][1]
    daemon.wait_until(lambda: any(t > last_stop for t, _ in daemon.readings()),
                      "a reading after the last stop journaled")
    readings = daemon.readings()
    period = (readings[-1][0] - readings[0][0]) / (len(readings) - 1)
    naive_off = []
    for start_ts, stop_ts, energy in results:
        exact = integrate(readings, start_ts, stop_ts).energy_j
        assert abs(energy - exact) <= 0.005 * exact, (energy, exact)
        naive = sum(p for t, p in readings if start_ts <= t < stop_ts) * period / NS
        naive_off.append(abs(naive - exact) / exact)
    assert max(naive_off) >= 0.05, naive_off


def test_restart_mid_run_reopens_with_gap(daemon_factory: object) -> None:
    daemon = daemon_factory()  # type: ignore[operator]
    assert send_marker("start", "survivor", to=daemon.to, tags={"k": "v"}).ok
    time.sleep(0.5)
    daemon.stop()
    time.sleep(1.5)
    daemon.start()
    stop = send_marker("stop", "survivor", to=daemon.to)
    assert stop.ok, stop
    assert stop.number("gap_s") > 1.0
    duration = stop.number("duration_s")
    assert abs(stop.number("energy_j") - 100.0 * duration) <= 0.005 * 100.0 * duration
    (run,) = [p for p in daemon.points("wattd_run") if p.tags["run"] == "survivor"]
    assert run.tags["k"] == "v"
    assert run.fields["gap_s"] > 1.0


def test_a_result_after_a_restart_joins_its_run(daemon_factory: object) -> None:
    daemon = daemon_factory()  # type: ignore[operator]
    start = send_marker("start", "before-restart", to=daemon.to, tags={"lang": "rust"})
    assert start.ok, start
    time.sleep(0.3)
    assert send_marker("stop", "before-restart", to=daemon.to).ok
    daemon.stop()
    daemon.start()
    reply = send_marker("result", "before-restart", to=daemon.to, tags={"requests": "500"})
    assert reply.ok, reply
    assert send_marker("result", "never-ran", to=daemon.to,
                       tags={"requests": "1"}).code == "unknown"
    (started,) = [p for p in daemon.points("wattd_marker")
                  if p.tags["run"] == "before-restart" and p.tags["verb"] == "start"]
    daemon.wait_until(lambda: any(p.tags["run"] == "before-restart"
                                  for p in daemon.points("wattd_result")), "the result journaled")
    (result,) = [p for p in daemon.points("wattd_result") if p.tags["run"] == "before-restart"]
    assert result.tags["lang"] == "rust"
    assert result.fields == {"requests": 500.0, "run_start_ns": started.t_ns}


def test_cli_mark_and_status_exit_codes(daemon_factory: object) -> None:
    daemon = daemon_factory()  # type: ignore[operator]
    base = [sys.executable, "-m", "wattd"]
    ok = subprocess.run([*base, "mark", "start", "cli", "--tag", "a=b", "--to", daemon.to],
                        check=False, capture_output=True,
                             text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok start cli")
    busy = subprocess.run([*base, "mark", "start", "cli2", "--to", daemon.to],
                          check=False, capture_output=True,
                             text=True, timeout=30)
    assert busy.returncode == 1
    assert "busy" in busy.stderr
    stop = subprocess.run([*base, "mark", "stop", "cli", "--to", daemon.to],
                          check=False, capture_output=True,
                             text=True, timeout=30)
    assert stop.returncode == 0
    assert "energy_j=" in stop.stdout
    usage = subprocess.run([*base, "mark", "start", "bad name!", "--to", daemon.to],
                           check=False, capture_output=True,
                             text=True, timeout=30)
    assert usage.returncode == 2
    status = subprocess.run([*base, "status", "--to", daemon.to, "--json"],
                            check=False, capture_output=True,
                             text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    assert '"markers"' in status.stdout
    assert '"meters"' in status.stdout
    nobody = subprocess.run([*base, "mark", "stop", "x", "--to", f"127.0.0.1:{_free_port()}",
                             "--timeout", "0.5"], check=False, capture_output=True,
                             text=True, timeout=30)
    assert nobody.returncode == 1
