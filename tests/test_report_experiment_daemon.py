"""The report of a real daemon's journal: `wattd run --simulate` as a subprocess,
real start/stop markers over loopback UDP for the energy; the load results and
CPU samples (which wattd exec and wattd probe would send) written by the test as
SPEC 3 points in a segment of their own after the daemon stopped. Then
`wattd report --format json` against figures computed here by hand, and
`--html` rendered by headless chromium."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.browser import census, chromium_or_skip, render
from tests.daemon_proc import DaemonProc, journal_points, write_config
from wattd.cli.main import main
from wattd.journal.segments import list_segments
from wattd.lineprotocol import format_line
from wattd.markers.client import MarkerClient, NoReplyError

# group -> (run seconds, ms per request, CPU cores busy)
WORK = {"slow": (0.8, 20.0, 0.9), "fast": (0.4, 5.0, 2.5)}
REQUESTS = 200
SAMPLE_NS = 100_000_000


def _interp(samples: list[tuple[int, float]], t: int) -> float:
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    raise AssertionError(f"no samples bracket {t}")


@pytest.mark.timeout(240)
def test_real_daemon_runs_with_results_and_cpu(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"name": "sim", "driver": "simulated", "power_w": 4.0,
                                      "poll_interval_s": 0.05}],
                          log={"format": "json", "level": "warning"})
    to = yaml.safe_load(config.read_text())["markers"]["listen"][0]
    journal = tmp_path / "journal"
    runs: list[tuple[str, str, int, float]] = []  # name, group, start_ns, daemon energy
    durations: dict[str, float] = {}  # the stop replies' duration_s
    with DaemonProc(config) as daemon, MarkerClient(to, timeout_s=10.0) as client:
        def answering() -> bool:
            try:
                return client.send("ping").ok
            except NoReplyError:
                return False

        daemon.wait_until(answering, what="the daemon answering markers")
        # Readings with power: a GB202 at 4 W sends its first frames without a power
        # refresh (the chip's power period is longer than a frame), and a run started
        # before the first power value has nothing to plot (seen on a loaded machine).
        daemon.wait_until(lambda: sum("power_w" in p.fields for p in journal_points(
            journal, "wattd_power")) >= 3, what="readings with power")
        first_ns = time.time_ns()
        for rep in (1, 2, 3):
            for group, (seconds, _, _) in WORK.items():
                name = f"{group}-{rep}"
                started = client.send("start", name, tags={"lang": group})
                assert started.ok, started.text
                time.sleep(seconds * (1 + 0.05 * (rep - 2)))
                stopped = client.send("stop", name)
                assert stopped.ok, stopped.text
                runs.append((name, group, int(started.fields["start_ns"]),
                             float(stopped.fields["energy_j"])))
                durations[name] = float(stopped.fields["duration_s"])
                time.sleep(0.2)
        time.sleep(0.3)
        last_ns = time.time_ns()
        assert daemon.stop() == 0

    # What wattd exec and wattd probe would have sent, as the daemon journals it.
    code = main(["report", "--journal", str(journal), "--format", "json"])
    assert code == 0
    bounds = {r["run"]: (r["start_ns"], r["stop_ns"]) for r in json.loads(
        capsys.readouterr().out)["runs"]}
    lines: list[tuple[int, str]] = []
    results: dict[str, float] = {}
    for i, (name, group, start_ns, _) in enumerate(runs):
        assert bounds[name][0] == start_ns
        tpr = WORK[group][1] * (1 + 0.02 * (i % 3 - 1))
        results[name] = tpr
        fields = {"requests": float(REQUESTS), "failed": 0.0, "time_per_request_ms": tpr,
                  "latency_ms_p50": tpr * 0.9, "latency_ms_p95": tpr * 1.6,
                  "latency_ms_p99": tpr * 2.2, "run_start_ns": start_ns}
        lines.append((start_ns, format_line("wattd_result", {"run": name, "source": "127.0.0.1",
                                                             "tool": "ab", "lang": group},
                                            fields, start_ns)))
        for q, factor in ((50, 0.9), (90, 1.3), (95, 1.6), (99, 2.2), (100, 4.0)):
            lines.append((start_ns, format_line(
                "wattd_latency", {"run": name, "q": str(q), "lang": group},
                {"ms": tpr * factor, "run_start_ns": start_ns}, start_ns)))
    samples: list[tuple[int, float]] = []
    cpu_s = 0.0
    t = first_ns - 3 * SAMPLE_NS
    while t < last_ns:
        inside = next((n for n, (a, b) in bounds.items() if a <= t <= b), None)
        busy = next((WORK[g][2] for n, g, _, _ in runs if n == inside), 0.01)
        cpu_s += busy * SAMPLE_NS / 1e9
        samples.append((t, cpu_s))
        tags = {"host": "pi", "target": "carddav"}
        if inside is not None:
            tags.update(run=inside, lang=inside.split("-")[0])
        lines.append((t, format_line("wattd_cpu", tags, {
            "cpu_s": cpu_s, "cpu_pct": 100 * busy, "rss_bytes": 4e7, "host_cpu_pct": 30.0,
            "procs": 2}, t)))
        t += SAMPLE_NS
    number = list_segments(journal)[-1].number + 1
    (journal / f"{number:08d}.lp").write_text(
        "".join(line + "\n" for _, line in sorted(lines)), encoding="utf-8")

    page = tmp_path / "report.html"
    assert main(["report", "--journal", str(journal), "--format", "json", "--html",
                 str(page)]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_run = {r["run"]: r for r in doc["runs"]}
    per_group: dict[str, dict[str, list[float]]] = {g: {"tpr": [], "cpu": []} for g in WORK}
    for name, group, _, energy in runs:
        r = by_run[name]
        assert r["duration_s"] == pytest.approx(durations[name], abs=1e-6), daemon.log_text()
        assert r["energy_j"] == pytest.approx(energy, rel=1e-3)  # as the daemon said
        assert r["energy_per_unit_j"] == pytest.approx(r["energy_j"] / REQUESTS)
        start, stop = bounds[name]
        cpu = _interp(samples, stop) - _interp(samples, start)
        assert r["cpu_s"] == pytest.approx(cpu, rel=1e-9)
        per_group[group]["tpr"].append(results[name])
        per_group[group]["cpu"].append(cpu / REQUESTS)
    comparisons = {c["metric"]: c for c in doc["comparisons"]}
    for metric, key in (("time_per_request_ms", "tpr"), ("cpu_per_unit_s", "cpu")):
        c = comparisons[metric]
        assert (c["a"], c["b"]) == ("slow", "fast")
        a, b = per_group["slow"][key], per_group["fast"][key]
        assert c["ratio"] == pytest.approx((sum(a) / 3) / (sum(b) / 3), rel=1e-9)

    chromium_or_skip()
    shown = render(page, tmp_path, height=3200)
    assert shown.console == []
    dom = census(shown.dom)
    assert [k for k in dom.svgs if k.startswith("fig-")] == [
        "fig-time-per-request", "fig-power", "fig-cpu", "fig-latency-cdf",
        "fig-energy-per-unit"]
    assert dom.svgs["fig-power"]["data-runs"] == "6"
    assert dom.svgs["fig-cpu"]["data-runs"] == "6"
    assert dom.svgs["fig-energy-per-unit"]["data-groups"] == "slow|fast"
    assert [m["group"] for m in dom.marks["fig-time-per-request"]] == ["slow", "fast"]
