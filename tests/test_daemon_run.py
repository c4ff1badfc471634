"""`wattd run` end to end: real subprocess, real pty, real journal."""

from __future__ import annotations

import itertools
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProc, journal_points, write_config


def _powers(journal: Path, meter: str = "pi") -> list[float]:
    return [float(p.fields["power_w"]) for p in journal_points(journal, "wattd_power")
            if p.tags.get("meter") == meter and "power_w" in p.fields]


def test_simulated_100w_readings_reach_the_journal(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": "/dev/ttyUSB-none",
                                   "power_w": 100.0, "tags": {"host": "bench"}}])
    journal = tmp_path / "journal"
    with DaemonProc(cfg) as daemon:
        daemon.wait_until(lambda: len(_powers(journal)) >= 25, what="25 readings")
        rc = daemon.stop(signal.SIGTERM)
    assert rc == 0
    points = journal_points(journal, "wattd_power")
    powers = _powers(journal)
    assert len(powers) >= 25
    assert statistics.fmean(powers[3:]) == pytest.approx(100.0, rel=0.02)
    sample = points[-1]
    assert sample.tags["meter"] == "pi"
    assert sample.tags["host"] == "bench"
    assert 200 < float(sample.fields["voltage_v"]) < 260
    assert float(sample.fields["current_a"]) == pytest.approx(100 / 230, rel=0.1)
    assert isinstance(sample.fields["clock_synced"], bool)
    stamps = [p.t_ns for p in points]
    assert stamps == sorted(stamps)
    # ~100 ms apart: the chip's real frame rate, stamped as they arrived.
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert 0.08e9 < statistics.median(gaps) < 0.13e9
    assert abs(stamps[-1] - time.time_ns()) < 30e9


def test_simulated_3w_low_load_path_end_to_end(tmp_path: Path) -> None:
    """At a Raspberry Pi's 3 W most frames carry no power refresh; the daemon
    must still report ~3 W on every reading (no fake 0 W, no stale value)."""
    cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": "/dev/none",
                                   "power_w": 3.0}])
    journal = tmp_path / "journal"
    with DaemonProc(cfg) as daemon:
        daemon.wait_until(lambda: len(_powers(journal)) >= 60, what="60 readings")
        rc = daemon.stop(signal.SIGINT)
    assert rc == 0
    powers = _powers(journal)[5:]
    assert min(powers) > 0.0, "no fake 0 W at low load"
    assert statistics.fmean(powers) == pytest.approx(3.0, rel=0.1)


def test_reconnects_when_the_port_vanishes_and_returns(tmp_path: Path) -> None:
    from wattd.simulator.meter import start_simulated_meter

    link = tmp_path / "ttyUSB0"
    server = start_simulated_meter("gb202", power_w=50.0, link_path=link)
    try:
        cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": str(link)}])
        journal = tmp_path / "journal"
        with DaemonProc(cfg, simulate=False) as daemon:
            daemon.wait_until(lambda: len(_powers(journal)) >= 10, what="first readings")
            server.unplug()
            t_unplug = time.time_ns()
            time.sleep(2.5)
            t_replug = time.time_ns()
            before = len(_powers(journal))
            server.replug()
            daemon.wait_until(lambda: len(_powers(journal)) >= before + 10, timeout_s=40,
                              what="readings after replug")
            assert daemon.stop() == 0
            log = daemon.log_text()
    finally:
        server.stop()
    # Judged by the readings' stamps, not by when the journal got them: readings
    # taken before the unplug may be written late (hold-back, a loaded machine).
    unplugged = [p for p in journal_points(journal, "wattd_power")
                 if p.tags.get("meter") == "pi" and "power_w" in p.fields
                 and t_unplug + 1.0e9 < p.t_ns < t_replug]
    assert len(unplugged) <= 1, f"no readings while unplugged: {unplugged}"
    assert statistics.fmean(_powers(journal)[-5:]) == pytest.approx(50.0, rel=0.05)
    # Each state change logged once, not once per retry.
    assert log.count("meter port lost") == 1
    assert log.count("meter port unavailable, retrying") <= 1
    assert log.count("meter port connected") == 2


def test_missing_port_does_not_stop_the_daemon(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202",
                                   "port": str(tmp_path / "no-such-tty")}])
    with DaemonProc(cfg, simulate=False) as daemon:
        time.sleep(2.5)
        assert daemon.proc.poll() is None, "a missing meter never stops the daemon"
        assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("meters:\n  - name: pi\n    port: /dev/x\n    drivr: gb202\n", ":4: key 'meters[0].drivr'"),
     ("meters: [\n", "invalid YAML"),
     ("journal: {dir: /tmp}\n", "'meters': is required")],
)
def test_bad_config_refuses_to_start(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    res = subprocess.run([sys.executable, "-m", "wattd", "run", "-c", str(cfg)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 2
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_a_meter_that_delivers_nothing_has_no_energy_in_the_reply_journal_and_report(
        tmp_path: Path) -> None:
    """A real pty the daemon opens and that never sends a byte (an unreadable
    meter) beside a simulated meter on its own pty: the stop reply names the
    silent meter in no_readings= and gives it no energy, never 0 J; the other
    keeps its own; the journal and `wattd report` agree."""
    import json
    import os
    import tty

    from tests.daemon_proc import free_udp_port
    from wattd.markers.client import send_marker
    from wattd.simulator.meter import start_simulated_meter

    live = start_simulated_meter("gb202", power_w=60.0, link_path=tmp_path / "ttyLIVE")
    master, slave = os.openpty()  # the silent meter: nobody ever writes to it
    tty.setraw(slave)
    dead = tmp_path / "ttyDEAD"
    dead.symlink_to(os.ttyname(slave))
    port = free_udp_port()
    to = f"127.0.0.1:{port}"
    try:
        cfg = write_config(tmp_path, [{"name": "live", "driver": "gb202",
                                       "port": str(live.port_path)},
                                      {"name": "dead", "driver": "gb202", "port": str(dead)}],
                           markers={"listen": [to], "stop_wait_s": 1})
        journal = tmp_path / "journal"
        with DaemonProc(cfg, simulate=False) as daemon:
            daemon.wait_until(lambda: len(_powers(journal, "live")) >= 10,
                              what="readings of the live meter")
            assert send_marker("start", "pair-1", to=to).ok
            assert send_marker("start", "solo-1", to=to, meter="dead").code == "busy"
            time.sleep(1.5)
            stop = send_marker("stop", "pair-1", to=to, timeout_s=10)
            assert send_marker("start", "solo-1", to=to, meter="dead").ok
            time.sleep(0.5)
            solo = send_marker("stop", "solo-1", to=to, timeout_s=10)
            executed = subprocess.run(
                [sys.executable, "-m", "wattd", "exec", "exec-1", "--to", to, "--",
                 sys.executable, "-c", "import time; time.sleep(0.5)"],
                capture_output=True, text=True, timeout=60, check=False)
            import wattd

            with wattd.run("api-1", to=to, meter="dead", timeout_s=10) as api:
                time.sleep(0.3)
            daemon.wait_until(lambda: len([p for p in journal_points(journal, "wattd_run")
                                           if p.tags["run"] == "solo-1"]) == 1,
                              what="the solo run's point in the journal")
            assert daemon.stop() == 0
    finally:
        live.stop()
        os.close(master)
        os.close(slave)
    assert stop.ok, stop
    assert stop.no_readings == ["dead"]
    assert "energy_j.dead" not in stop.fields
    duration = stop.number("duration_s")
    assert stop.number("energy_j.live") == pytest.approx(60.0 * duration, rel=0.03)
    assert "energy_j" not in stop.fields  # the total would miss a meter
    assert solo.ok, solo
    assert solo.no_readings == ["dead"]
    for key in ("energy_j", "mean_w", "max_w", "extrapolated_s"):
        assert key not in solo.fields, solo
    assert solo.number("samples") == 0
    assert executed.returncode == 0, executed.stderr
    (result,) = [ln for ln in executed.stderr.splitlines() if ln.startswith("wattd: exec-1 ")]
    assert "energy_j.live=" in result
    assert "no_readings=dead" in result
    assert " energy_j=" not in result
    assert "no reading from meter dead during the run: no energy" in executed.stderr
    assert api.energy_j is None
    assert api.mean_w is None
    assert api.no_readings == ["dead"]
    points = {(p.tags["run"], p.tags["meter"]): p for p in journal_points(journal, "wattd_run")}
    assert points[("pair-1", "live")].fields["energy_j"] == pytest.approx(
        stop.number("energy_j.live"))
    for key in (("pair-1", "dead"), ("solo-1", "dead")):
        assert points[key].fields["no_readings"] is True
        assert "energy_j" not in points[key].fields
    out = subprocess.run([sys.executable, "-m", "wattd", "report", "--journal", str(journal),
                          "--format", "json"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    rows = {(r["run"], r["meter"]): r for r in json.loads(out.stdout)["runs"]}
    assert rows[("pair-1", "live")]["energy_j"] == pytest.approx(
        stop.number("energy_j.live"), rel=1e-3)
    for key in (("pair-1", "dead"), ("solo-1", "dead")):
        assert rows[key]["energy_j"] is None
        assert rows[key]["flags"]["no_readings"] is True
