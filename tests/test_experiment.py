"""The issue's done-when, end to end: a real daemon (simulated meter
following this machine's CPU), `wattd exec` wrapping a real ab run against a
real Python HTTP server, `wattd probe --pid <server>` beside it. The journal
must hold the run's energy, its ab results, its latency distribution and CPU
samples tagged with the run, whose cpu_s increase over the run matches the
server's own utime+stime increase (read here from /proc/<pid>/stat) within 10 %."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.exec_rig import Rig
from tests.http_targets import python_server, require_tool
from wattd.lineprotocol import Point


def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_at(points: list[Point], t_ns: int) -> float:
    """cpu_s at t_ns, interpolated between the samples around it (SPEC 9.4)."""
    before = [p for p in points if p.t_ns <= t_ns]
    after = [p for p in points if p.t_ns >= t_ns]
    assert before, "no sample before the boundary"
    assert after, "no sample after the boundary"
    a, b = before[-1], after[0]
    ca, cb = float(a.fields["cpu_s"]), float(b.fields["cpu_s"])
    if b.t_ns == a.t_ns:
        return ca
    return ca + (cb - ca) * (t_ns - a.t_ns) / (b.t_ns - a.t_ns)


def test_whole_experiment(tmp_path: Path) -> None:
    ab = require_tool("ab")
    meter = {"name": "pi", "driver": "simulated", "power_model": "cpu",
             "idle_w": 2.0, "busy_w": 5.0}
    (tmp_path / "daemon").mkdir()
    with Rig(tmp_path / "daemon", meter) as rig, python_server(tmp_path) as (url, server):
        probe = subprocess.Popen([sys.executable, "-m", "wattd", "probe", "--pid",
                                  str(server.pid), "--host", "pi-under-test", "--interval",
                                  "0.2", "--to", rig.to], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(rig.points("wattd_cpu")) < 3:  # the probe is running
                assert time.monotonic() < deadline, "no wattd_cpu samples"
                assert probe.poll() is None, probe.stderr.read() if probe.stderr else ""
                time.sleep(0.1)
            cpu_before = _server_cpu_s(server.pid)
            out = rig.wattd("exec", "py", "--tag", "lang=python", "--to", rig.to, "--",
                            ab, "-n", "4000", "-c", "4", url + "index.html")
            cpu_after = _server_cpu_s(server.pid)
            time.sleep(1.0)  # samples after the stop, to interpolate at it
        finally:
            os.kill(probe.pid, signal.SIGTERM)
            probe.wait(10)
    assert out.returncode == 0, out.stderr
    assert "Complete requests:      4000" in out.stdout
    # energy
    (run,) = rig.runs("py")
    duration_s = float(run.fields["duration_s"])
    assert 2.0 * duration_s * 0.95 <= float(run.fields["energy_j"]) <= 5.0 * duration_s * 1.05
    assert run.tags["lang"] == "python"
    start_ns, stop_ns = int(run.fields["start_ns"]), run.t_ns
    # ab results
    merged: dict[str, object] = {}
    for point in rig.points("wattd_result"):
        if point.tags["run"] == "py":
            assert point.tags["tool"] == "ab"
            assert point.fields["run_start_ns"] == start_ns
            merged.update(point.fields)
    assert merged["requests"] == 4000.0
    assert merged["failed"] == 0.0
    assert float(merged["time_per_request_ms"]) > 0  # type: ignore[arg-type]
    for key in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "latency_ms_max"):
        assert key in merged
    # the full distribution
    latency = {int(p.tags["q"]): float(p.fields["ms"]) for p in rig.points("wattd_latency")
               if p.tags["run"] == "py"}
    assert sorted(latency) == [50, 66, 75, 80, 90, 95, 98, 99, 100]
    assert latency[50] <= latency[99] <= latency[100]
    # CPU samples tagged with the run, matching the server's own CPU time
    samples = sorted((p for p in rig.points("wattd_cpu")
                      if p.tags.get("host") == "pi-under-test"), key=lambda p: p.t_ns)
    tagged = [p for p in samples if p.tags.get("run") == "py"]
    assert len(tagged) >= 3
    assert all(start_ns <= p.t_ns < stop_ns for p in tagged)
    assert all(p.tags["lang"] == "python" and p.tags["target"] == "python" for p in tagged)
    assert not [p for p in samples if p.tags.get("run") == "py" and not
                start_ns <= p.t_ns < stop_ns]
    journal_cpu_s = _cpu_at(samples, stop_ns) - _cpu_at(samples, start_ns)
    server_cpu_s = cpu_after - cpu_before
    print(f"cpu_s journal {journal_cpu_s:.3f} server {server_cpu_s:.3f} energy "
          f"{run.fields['energy_j']} J over {duration_s} s, {len(tagged)} tagged samples")
    assert server_cpu_s > 0.3, "the load was too light to compare"
    assert abs(journal_cpu_s - server_cpu_s) <= 0.10 * server_cpu_s, (journal_cpu_s,
                                                                     server_cpu_s)
