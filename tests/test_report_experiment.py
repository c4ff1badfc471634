"""`wattd report` with load results and server CPU samples in the journal (SPEC 9.4):
per-run figures, groups and comparisons checked against figures computed here by
hand from the raw points the journal holds (SPEC 3)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from tests.report_journal import JournalBuilder, PlannedRun, experiment_journal
from wattd.cli.main import main

GROUPS = {"python": (4.2, 20.0, 0.95), "rust": (4.8, 5.0, 3.2)}
IDLE_W = 2.7


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _interp(samples: list[tuple[float, float]], t: float) -> float:
    for (t0, v0), (t1, v1) in itertools.pairwise(samples):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    raise AssertionError(f"no samples bracket {t}")


def _cpu_s(run: PlannedRun, samples: list[tuple[float, float]]) -> float:
    return _interp(samples, run.stop_s) - _interp(samples, run.start_s)


@pytest.fixture
def experiment(tmp_path: Path) -> tuple[Path, list[PlannedRun], list[tuple[float, float]]]:
    journal = tmp_path / "journal"
    runs, samples = experiment_journal(journal, GROUPS, 4)
    return journal, runs, samples


def test_json_figures_equal_the_hand_computed_ones(
        experiment: tuple[Path, list[PlannedRun], list[tuple[float, float]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    journal, planned, samples = experiment
    code, out, err = _run(capsys, "--journal", str(journal), "--baseline", "idle",
                          "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    runs = {r["run"]: r for r in doc["runs"]}
    for p in planned:
        r = runs[p.name]
        duration = p.stop_s - p.start_s
        assert r["energy_j"] == pytest.approx(p.watts * duration, rel=1e-9)
        assert "requests" not in r["tags"]  # the unit count comes from the result
        assert r["requests"] == p.requests
        assert r["failed"] == 0
        assert r["rps"] == pytest.approx(p.requests / duration)
        assert r["time_per_request_ms"] == pytest.approx(p.time_per_request_ms)
        for q in (50, 95, 99):
            assert r[f"latency_ms_p{q}"] == pytest.approx(p.latency[float(q)])
        assert [q for q, _ in r["latency_ms"]] == sorted(p.latency)
        assert r["energy_per_unit_j"] == pytest.approx(p.watts * duration / p.requests)
        cpu = _cpu_s(p, samples)
        assert r["cpu_s"] == pytest.approx(cpu, rel=1e-9)
        assert r["cpu_pct_mean"] == pytest.approx(100 * cpu / duration, rel=1e-9)
        assert r["rss_bytes_max"] == 50e6
        assert r["cpu_s_per_unit"] == pytest.approx(cpu / p.requests, rel=1e-9)
    assert "cpu_s" in runs["idle"]  # probed while idle too
    assert "requests" not in runs["idle"]  # no results: no load keys
    assert runs["idle"]["energy_j"] == pytest.approx(IDLE_W * 4)

    by_group: dict[str, dict[str, list[float]]] = {}
    for p in planned:
        g = by_group.setdefault(p.group, {"time_per_request_ms": [], "cpu_per_unit_s": []})
        g["time_per_request_ms"].append(p.time_per_request_ms)
        g["cpu_per_unit_s"].append(_cpu_s(p, samples) / p.requests)
    groups = {g["group"]: g for g in doc["groups"]}
    for name, figures in by_group.items():
        for metric, suffix in (("time_per_request_ms", "_ms"), ("cpu_per_unit_s", "_s")):
            values = figures[metric]
            s = groups[name][metric]
            mean = sum(values) / len(values)
            low, high = sps.t.interval(0.95, len(values) - 1, loc=mean,
                                       scale=sps.sem(values))
            assert s["n"] == 4
            assert s[f"mean{suffix}"] == pytest.approx(mean, rel=1e-9)
            assert s[f"stdev{suffix}"] == pytest.approx(float(sps.tstd(values)), rel=1e-6)
            assert s[f"ci95_low{suffix}"] == pytest.approx(low, rel=1e-6)
            assert s[f"ci95_high{suffix}"] == pytest.approx(high, rel=1e-6)

    metrics = [c["metric"] for c in doc["comparisons"]]
    assert metrics == ["net_energy_per_unit_j", "energy_per_unit_j", "time_per_request_ms",
                       "cpu_per_unit_s"]
    for c in doc["comparisons"][2:]:
        assert (c["a"], c["b"]) == ("python", "rust")
        a, b = by_group["python"][c["metric"]], by_group["rust"][c["metric"]]
        assert c["ratio"] == pytest.approx((sum(a) / len(a)) / (sum(b) / len(b)), rel=1e-9)
        assert c["p_value"] == pytest.approx(
            float(sps.ttest_ind(a, b, equal_var=False).pvalue), rel=1e-4, abs=1e-12)
        assert c["ci95_low"] < c["ratio"] < c["ci95_high"]
    # The journal's experiment points are no "unknown measurement".
    assert not any("other measurements" in n for n in doc["notes"])


def test_table_csv_markdown_carry_the_load_and_cpu_figures(
        experiment: tuple[Path, list[PlannedRun], list[tuple[float, float]]],
        capsys: pytest.CaptureFixture[str]) -> None:
    journal, planned, samples = experiment
    code, out, _ = _run(capsys, "--journal", str(journal), "--baseline", "idle")
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("run ") and "ms/request" in line)
    for column in ("requests", "failed", "req/s", "p50_ms", "p95_ms", "p99_ms", "cpu_s",
                   "cpu_%", "rss_MiB", "cpu_ms/request"):
        assert column in header.split()
    idle = next(line for line in lines[lines.index(header):] if line.startswith("idle "))
    assert idle.split()[2:9] == ["-"] * 7  # no load results for the idle run
    assert "rust is " in out
    assert "x faster per request" in out
    assert "x less CPU" in out
    assert "mean ms/request" in out

    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "csv")
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO(out))}
    p = planned[0]
    assert float(rows[p.name]["time_per_request_ms"]) == pytest.approx(p.time_per_request_ms)
    assert float(rows[p.name]["cpu_s"]) == pytest.approx(_cpu_s(p, samples), rel=1e-9)
    assert rows["idle"]["requests"] == ""
    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "markdown")
    assert "## Runs: load results and server CPU" in out
    assert "| time per request |" in out


def test_runs_without_results_or_cpu_report_energy_as_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = JournalBuilder().readings("pi", 0, 20, 0.5, power=3.0)
    for i, start in enumerate((1.0, 6.0, 11.0)):
        b.marker("start", f"plain-{i + 1}", start, text="requests=100")
        b.marker("stop", f"plain-{i + 1}", start + 4)
    b.write(tmp_path, 1)
    code, out, _ = _run(capsys, "--journal", str(tmp_path), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    for r in doc["runs"]:
        assert r["energy_j"] == pytest.approx(12.0)
        assert r["energy_per_unit_j"] == pytest.approx(0.12)
        assert "time_per_request_ms" not in r
        assert "cpu_s" not in r
    group = doc["groups"][0]
    assert "time_per_request_ms" not in group
    assert "cpu_per_unit_s" not in group
    code, out, _ = _run(capsys, "--journal", str(tmp_path))
    assert "load results" not in out  # no empty table of dashes


def test_cpu_not_bracketed_by_samples_is_not_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = JournalBuilder().readings("pi", 0, 12, 0.5, power=3.0)
    b.marker("start", "late-probe", 1.0)
    for k in range(8):  # the probe starts after the run did
        b.cpu(2.0 + k, 1.0 * k, cpu_pct=100.0, run="late-probe")
    b.marker("stop", "late-probe", 11.0)
    b.write(tmp_path, 1)
    code, out, _ = _run(capsys, "--journal", str(tmp_path), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    run = doc["runs"][0]
    assert run["cpu_s"] is None
    assert run["cpu_pct_mean"] is None
    assert run["rss_bytes_max"] == 50e6  # sampled, so it is known
    assert any("do not bracket" in n for n in doc["notes"])


def test_results_find_their_run_and_samples_of_another_run_are_not_used(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = JournalBuilder().readings("a", 0, 30, 0.5, power=3.0)
    b.readings("b", 0, 30, 0.5, power=5.0)
    # The same name twice: the second run's results (without run_start_ns) and the
    # first one's (with it) go to their own run.
    b.marker("start", "bench", 1.0, meter="a").marker("stop", "bench", 5.0, meter="a")
    b.marker("start", "bench", 10.0, meter="a").marker("stop", "bench", 14.0, meter="a")
    b.result("bench", 15.0, None, requests=300.0)
    b.result("bench", 15.5, 1.0, requests=100.0, time_per_request_ms=2.0)
    b.result("bench", 15.6, 1.0, time_per_request_ms=3.0)  # accumulates, later wins
    # Meter b runs "other" at the same time as the second bench; its probe's samples
    # are tagged with it and are no CPU of bench.
    b.marker("start", "other", 9.0, meter="b").marker("stop", "other", 16.0, meter="b")
    for k in range(20):
        b.cpu(8.25 + 0.5 * k, 0.5 * k, cpu_pct=100.0, host="b", run="other")
    b.raw("wattd_latency,run=bench,q=abc ms=1.0 1700000020000000000")  # bad q
    b.write(tmp_path, 1)
    code, out, _ = _run(capsys, "--journal", str(tmp_path), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    first, second = (r for r in doc["runs"] if r["run"] == "bench")
    assert first["results"] == {"requests": 100.0, "time_per_request_ms": 3.0}
    assert first["energy_per_unit_j"] == pytest.approx(12.0 / 100)
    assert second["results"] == {"requests": 300.0}
    assert "cpu_s" not in second
    other = next(r for r in doc["runs"] if r["run"] == "other")
    probe = [(8.25 + 0.5 * k, 0.5 * k) for k in range(20)]
    assert other["cpu_s"] == pytest.approx(_interp(probe, 16.0) - _interp(probe, 9.0))
    assert any("1 wattd_result/wattd_latency/wattd_cpu line" in n for n in doc["notes"])


def _html(capsys: pytest.CaptureFixture[str], journal: Path, page: Path, *argv: str) -> str:
    code, _, err = _run(capsys, "--journal", str(journal), "--html", str(page), *argv)
    assert code == 0, err
    assert f"HTML report in {page}" in err
    return page.read_text(encoding="utf-8")


def test_html_page_is_self_contained_with_five_marked_figures(
        experiment: tuple[Path, list[PlannedRun], list[tuple[float, float]]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.browser import census

    journal, planned, _ = experiment
    text = _html(capsys, journal, tmp_path / "report.html", "--baseline", "idle")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text
    assert "http://" not in text
    assert "https://" not in text
    page = census(text)
    assert all(url.startswith("#") for url in page.urls), page.urls
    assert list(page.svgs) == ["fig-time-per-request", "fig-power", "fig-cpu",
                               "fig-latency-cdf", "fig-energy-per-unit"]
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # five inline SVGs, no shared id
    assert page.svgs["fig-power"]["data-runs"] == str(len(planned) + 1)  # and idle
    assert page.svgs["fig-cpu"]["data-runs"] == str(len(planned) + 1)
    for fig in ("fig-time-per-request", "fig-latency-cdf", "fig-energy-per-unit"):
        assert page.svgs[fig]["data-groups"] == "python|rust"
    bars = [m["group"] for m in page.marks["fig-time-per-request"]]
    assert bars == ["python", "rust"]
    means = [float(m["mean"]) for m in page.marks["fig-time-per-request"]]
    assert means[0] == pytest.approx(sum(p.time_per_request_ms for p in planned
                                         if p.group == "python") / 4)
    for label in ("time per request (ms)", "power (W)", "server CPU (% of one core)",
                  "response time (ms)", "net energy per request (mJ, above the baseline)",
                  "time since run start (s)"):
        assert label in text
    assert "rust is " in text  # the conclusions
    assert '<table id="comparisons">' in text


def test_html_without_matplotlib_names_the_extra(
        experiment: tuple[Path, list[PlannedRun], list[tuple[float, float]]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    code, out, err = _run(capsys, "--journal", str(experiment[0]), "--html",
                          str(tmp_path / "r.html"))
    assert code == 1
    assert "--html needs matplotlib" in err
    assert "pip install 'wattd[plot]'" in err
    assert not (tmp_path / "r.html").exists()
    assert out == ""


def test_cpu_increase_interpolates_both_ends_and_survives_a_probe_restart() -> None:
    from wattd.report.experiment import cpu_increase

    def series(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
        return [t for t, _ in points], [v for _, v in points]

    times, values = series([(0, 0.0), (10, 5.0), (20, 15.0), (30, 16.0)])
    # [5, 25]: 2.5 at the start (on 0..10), 15.5 at the stop (on 20..30).
    assert cpu_increase(times, values, 5, 25) == pytest.approx(13.0)
    assert cpu_increase(times, values, 10, 20) == pytest.approx(10.0)  # samples on the ends
    assert cpu_increase(times, values, 12, 14) == pytest.approx(2.0)  # inside one interval
    assert cpu_increase(times, values, -1, 25) is None  # no sample before the start
    assert cpu_increase(times, values, 5, 31) is None  # none after the stop
    # A restarted probe counts from zero again: the step back adds nothing.
    times, values = series([(0, 100.0), (10, 104.0), (20, 1.0), (30, 3.0)])
    assert cpu_increase(times, values, 0, 30) == pytest.approx(4.0 + 2.0)


def test_many_groups_conclude_with_one_ranking_per_metric(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    groups = {"python": (4.2, 20.0, 0.95), "rust": (4.8, 5.0, 3.2), "go": (4.6, 7.0, 2.4),
              "java": (4.9, 9.0, 2.8), "node": (4.3, 14.0, 1.1)}
    experiment_journal(tmp_path, groups, 2, requests=400)
    code, out, _ = _run(capsys, "--journal", str(tmp_path), "--baseline", "idle")
    assert code == 0
    rankings = [line for line in out.splitlines() if "lowest first:" in line]
    assert len(rankings) == 4  # net energy, energy, time and CPU per request
    speed = next(line for line in rankings if line.startswith("time per request"))
    order = [item.split()[0] for item in speed.split("lowest first: ")[1].split(", ")]
    assert order == sorted(groups, key=lambda g: groups[g][1])  # by ms per request
    assert "rust is " in out  # the best two, compared
    assert sum("x faster per request" in line for line in out.splitlines()) == 1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"wattd_result,", b"wattd_latency,", b"wattd_cpu,"]),
       st.binary(max_size=120))
def test_experiment_lines_of_any_bytes_are_points_or_counted(prefix: bytes, rest: bytes) -> None:
    from wattd.report.experiment import ExperimentReader

    reader = ExperimentReader()
    reader.feed(prefix + rest.replace(b"\n", b" "))
    data = reader.finish()
    s = data.stats
    assert s.bad_lines + s.result_points + s.latency_points + s.cpu_points >= 1
    data.load_of("r", 0, [0])  # whatever was read, attaching it to a run never raises
    data.cpu_of("r", 0, 10)
