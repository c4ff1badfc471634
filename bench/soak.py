"""Soak: millions of readings through the whole daemon, accelerated.

`wattd run --simulate --unpaced` (a subprocess) feeds simulated GB202 meters
as fast as its pipeline accepts, through the real decoder, run tagging, the
journal and a v2 sink into a VictoriaMetrics started here; meanwhile runs are
opened and closed over real UDP markers throughout. At the end the daemon is
stopped (SIGTERM) and started once more with its meters unplugged, so what it
journalled after its sink stopped is delivered as after any restart.

Checks (printed as one JSON object, `ok` when all hold):
- RSS growth between the first and the last million readings < 5 %;
- no growth of file descriptors or asyncio tasks (both sampled from `status`);
- nothing lost: every wattd_power point of the journal is in the database
  (and nothing is there twice: no crash, so no resent batch);
- every run's energy in the `stop` reply equals `wattd report --format json`
  on the journal, per meter, within 1e-6 relative + 20 us x mean power (the
  daemon integrates on CLOCK_BOOTTIME, the report on realtime stamps).

    .venv/bin/python bench/soak.py [--readings 5000000] [--meters 2]

Not part of the test suite (it takes minutes); the fault suite is bench/faults.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.load_rig import (
    DaemonRig,
    delivery_check,
    journal_readings,
    victoria_readings,
    wait_for,
)
from tests.servers import VictoriaMetrics

RSS_GROWTH_MAX = 0.05
ENERGY_REL_TOL = 1e-6
CLOCK_PAIR_TOL_S = 20e-6


class MarkerLoop(threading.Thread):
    """Opens and closes runs over UDP until told to stop; keeps every stop reply."""

    def __init__(self, rig: DaemonRig, run_s: float, idle_s: float) -> None:
        super().__init__(name="markers", daemon=True)
        self.rig = rig
        self.run_s = run_s
        self.idle_s = idle_s
        self.halt = threading.Event()
        self.results: dict[str, dict[str, str]] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        with self.rig.client(timeout_s=20.0) as client:
            while not self.halt.is_set():
                n += 1
                name = f"soak-{n}"
                try:
                    start = client.send("start", name, tags={"lang": "py", "iteration": n})
                    if not start.ok:
                        self.errors.append(f"start {name}: {start}")
                        continue
                    self.halt.wait(self.run_s)
                    stop = client.send("stop", name)
                except Exception as exc:
                    self.errors.append(f"{name}: {exc!r}")
                    continue
                if stop.ok:
                    self.results[name] = dict(stop.fields)
                else:
                    self.errors.append(f"stop {name}: {stop}")
                self.halt.wait(self.idle_s)


def sample(rig: DaemonRig) -> dict[str, Any]:
    status = rig.status()
    proc = status["process"]
    return {"readings": int(status["pipeline"]["readings_written"]), "rss_mb": proc["rss_mb"],
            "fds": proc["fds"], "tasks": proc["tasks"], "t": time.monotonic()}


def compare_energy(results: dict[str, dict[str, str]], report: dict[str, Any],
                   meters: list[str]) -> dict[str, Any]:
    by_run: dict[tuple[str, str], float | None] = {
        (r["run"], r["meter"]): None if r["energy_j"] is None else float(r["energy_j"])
        for r in report["runs"]}
    worst = worst_abs = 0.0
    mismatches: list[dict[str, Any]] = []
    compared = 0
    for run, fields in results.items():
        for meter in meters:
            key = f"energy_j.{meter}" if len(meters) > 1 else "energy_j"
            silent = meter in fields.get("no_readings", "").split(",")
            report_j = by_run.get((run, meter))
            if silent or key not in fields:
                # No energy from the daemon (no reading): the report must have none either.
                if not silent or report_j is not None:
                    mismatches.append({"run": run, "meter": meter, "daemon": None,
                                       "report_j": report_j})
                continue
            daemon_j = float(fields[key])
            if report_j is None:
                mismatches.append({"run": run, "meter": meter, "report": None})
                continue
            compared += 1
            diff = abs(daemon_j - report_j)
            worst = max(worst, diff / max(abs(report_j), 1e-9))
            worst_abs = max(worst_abs, diff)
            # The daemon integrates on CLOCK_BOOTTIME, the report on realtime stamps:
            # the two clocks are read a few ns to us apart for each reading and marker.
            mean_w = float(fields.get(f"mean_w.{meter}", fields["mean_w"]))
            if diff > ENERGY_REL_TOL * abs(report_j) + CLOCK_PAIR_TOL_S * abs(mean_w):
                mismatches.append({"run": run, "meter": meter, "daemon_j": daemon_j,
                                   "report_j": report_j})
    return {"runs": len(results), "compared": compared, "worst_rel_diff": worst,
            "worst_abs_diff_j": worst_abs,
            "mismatches": mismatches[:10], "mismatch_count": len(mismatches)}


def soak(tmp: Path, vm: VictoriaMetrics, readings: int, meters: int, run_s: float,
         idle_s: float) -> dict[str, Any]:
    names = [f"m{i}" for i in range(meters)]
    influx = [{"url": vm.url, "api": "v2", "org": "wattd", "bucket": "wattd",
               "batch_size": 5000, "flush_interval_s": 0.5, "name": "victoria"}]
    journal = {"max_bytes": 16 << 30, "fsync_interval_s": 1.0}
    rig = DaemonRig(tmp / "daemon", [{"name": n, "driver": "simulated", "power_w": 40.0 + 30 * i}
                                     for i, n in enumerate(names)],
                    simulate=True, unpaced=True, influxdb=influx, journal=journal)
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    with rig:
        rig.start()
        markers = MarkerLoop(rig, run_s, idle_s)
        markers.start()
        first: dict[str, Any] | None = None
        while True:
            s = sample(rig)
            samples.append(s)
            if first is None and s["readings"] >= 1_000_000:
                first = s
            if s["readings"] >= readings:
                break
            if not rig.alive:
                raise AssertionError(f"daemon died:\n{rig.log_tail()}")
            time.sleep(1.0)
        last = samples[-1]
        markers.halt.set()
        markers.join(60)
        fed_s = time.monotonic() - t0
        wait_for(lambda: rig.sink_backlog_bytes() < 50_000_000, 900, "delivery to catch up", 1.0)
        final = rig.status()
        code = rig.stop()
        delivered_s = time.monotonic() - t0
    # Restart with the meters unplugged: delivers what was journalled after the sink stopped.
    rest = DaemonRig(tmp / "daemon", [{"name": n, "driver": "gb202", "port": str(tmp / "none")}
                                      for n in names], influxdb=influx, journal=journal)
    with rest:
        rest.start()
        wait_for(lambda: rest.sink_backlog_bytes() == 0, 600, "the remainder delivered", 0.5)
        rest.stop()
    journal_dir = rig.journal_dir
    time.sleep(2.0)  # VictoriaMetrics makes a write visible within a second or so
    delivery = delivery_check(journal_readings(journal_dir), victoria_readings(vm))
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "wattd", "report", "--journal", str(journal_dir),
         "--format", "json"], capture_output=True, check=True, timeout=1800).stdout)
    energy = compare_energy(markers.results, report, names)

    assert first is not None
    # Windows of samples (one a second): the first million after warm-up (readings
    # 1M-2M) and the last million. Maxima for RSS (a leak raises the peak), minima for
    # descriptors and tasks (transients: a gzip in a thread, an HTTP reconnect).
    first_w = [s for s in samples if first["readings"] <= s["readings"] < 2_000_000]
    last_w = [s for s in samples if s["readings"] >= last["readings"] - 1_000_000]
    rss_first = max(s["rss_mb"] for s in first_w)
    rss_last = max(s["rss_mb"] for s in last_w)
    rss_growth = (rss_last - rss_first) / rss_first
    checks = {
        "rss_growth_under_5pct": rss_growth < RSS_GROWTH_MAX,
        "no_fd_growth": min(s["fds"] for s in last_w) <= min(s["fds"] for s in first_w),
        "no_task_growth": min(s["tasks"] for s in last_w) <= min(s["tasks"] for s in first_w),
        "nothing_lost": delivery["missing"] == 0 and delivery["duplicated"] == 0,
        "energy_equals_report": energy["mismatch_count"] == 0 and energy["runs"] > 0,
        "no_marker_errors": not markers.errors,
        "daemon_exit_0": code == 0,
    }
    return {
        "bench": "soak", "ok": all(checks.values()), "checks": checks,
        "readings_target": readings, "readings_journaled": delivery["journal"],
        "meters": meters, "runs": len(markers.results),
        "feed_s": round(fed_s, 1), "until_delivered_s": round(delivered_s, 1),
        "readings_per_s": round(last["readings"] / fed_s),
        "rss_mb_max_first_million": rss_first, "rss_mb_max_last_million": rss_last,
        "rss_growth_pct": round(100 * rss_growth, 2),
        "peak_rss_mb": final["process"].get("peak_rss_mb"),
        "fds_first_million": sorted({s["fds"] for s in first_w}),
        "fds_last_million": sorted({s["fds"] for s in last_w}),
        "tasks_first_million": sorted({s["tasks"] for s in first_w}),
        "tasks_last_million": sorted({s["tasks"] for s in last_w}),
        "rss_mb_by_million": {f"{m}M": max((s["rss_mb"] for s in samples
                                            if m * 1_000_000 <= s["readings"]
                                            < (m + 1) * 1_000_000), default=None)
                              for m in range(last["readings"] // 1_000_000 + 1)},
        "delivery": delivery, "energy": energy, "marker_errors": markers.errors[:10],
        "sink_status": final.get("sinks"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=5_000_000)
    parser.add_argument("--meters", type=int, default=2)
    parser.add_argument("--run-s", type=float, default=1.0, help="length of each marker run")
    parser.add_argument("--idle-s", type=float, default=0.3, help="pause between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wattd-soak-") as tmp_name:
        tmp = Path(tmp_name)
        vm = VictoriaMetrics(tmp / "vm")
        with vm:
            result = soak(tmp, vm, args.readings, args.meters, args.run_s, args.idle_s)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
