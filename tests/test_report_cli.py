"""`wattd report` end to end on hand-built journals: figures, formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

from tests.report_journal import JournalBuilder, ts
from wattd.cli.main import main

# Experiment: idle 2.7 W for 10 s; python-i at 4.6 W and rust-i at 4.2 W with
# per-repetition durations; 500 000 requests each. Constant power per run, so
# every energy is exact: watts x seconds.
IDLE_W = 2.7
RUNS = [("python-1", 4.6, 10.0), ("rust-1", 4.2, 3.0), ("python-2", 4.6, 10.5),
        ("rust-2", 4.2, 2.75), ("python-3", 4.6, 9.75), ("rust-3", 4.2, 3.25)]
REQUESTS = 500_000


def _experiment(directory: Path) -> None:
    b = JournalBuilder()
    t = 0.0
    b.readings("pi", t, 12, 0.25, power=IDLE_W)
    b.marker("start", "idle", 1.0)
    b.marker("stop", "idle", 11.0)
    t = 12.0
    for i, (name, watts, dur) in enumerate(RUNS):
        lang = name.split("-")[0]
        b.marker("start", name, t + 0.125, text=f"lang={lang} requests={REQUESTS}")
        b.readings("pi", t, t + dur + 0.25, 0.25, power=watts)
        b.marker("stop", name, t + 0.125 + dur)
        t += dur + 0.5
        b.readings("pi", t - 0.25, t - 0.25, 0.25, power=watts)
        if i == 2:
            b.write(directory, 1, gz=True)  # the first half in a closed, gzip segment
    b.write(directory, 2)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    _experiment(directory)
    return directory


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _energies(lang: str) -> list[float]:
    return [watts * dur for name, watts, dur in RUNS if name.startswith(lang)]


def test_json_shape_and_exact_figures(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "json",
                        "--baseline", "idle")
    assert code == 0
    doc = json.loads(out)
    assert {"runs", "groups", "comparisons"} <= set(doc)
    run_keys = {"run", "meter", "start_ns", "stop_ns", "duration_s", "energy_j", "mean_w",
                "min_w", "max_w", "samples", "tags", "net_energy_j", "energy_per_unit_j",
                "net_energy_per_unit_j"}
    runs = {r["run"]: r for r in doc["runs"]}
    assert set(runs) == {"idle"} | {name for name, _, _ in RUNS}
    for name, watts, dur in RUNS:
        r = runs[name]
        assert run_keys <= set(r)
        assert r["energy_j"] == pytest.approx(watts * dur, abs=1e-9)
        assert r["duration_s"] == pytest.approx(dur)
        assert r["mean_w"] == pytest.approx(watts)
        assert r["samples"] == round(dur / 0.25)
        assert r["net_energy_j"] == pytest.approx((watts - IDLE_W) * dur, abs=1e-9)
        assert r["energy_per_unit_j"] == pytest.approx(watts * dur / REQUESTS, rel=1e-12)
        assert r["net_energy_per_unit_j"] == pytest.approx((watts - IDLE_W) * dur / REQUESTS,
                                                           rel=1e-9)
        assert r["tags"]["requests"] == str(REQUESTS)
        assert r["stop_ns"] - r["start_ns"] == round(dur * 1e9)
    assert runs["idle"]["energy_j"] == pytest.approx(27.0)
    assert runs["idle"]["group"] is None  # the baseline stays out of statistics

    groups = {g["group"]: g for g in doc["groups"]}
    assert set(groups) == {"python", "rust"}
    group_keys = {"group", "n", "mean_energy_j", "stdev_energy_j", "rel_stdev", "ci95_low_j",
                  "ci95_high_j"}
    for lang in ("python", "rust"):
        g = groups[lang]
        assert group_keys <= set(g)
        values = _energies(lang)
        mean = sum(values) / 3
        low, high = sps.t.interval(0.95, 2, loc=mean, scale=sps.sem(values))
        assert g["n"] == 3
        assert g["mean_energy_j"] == pytest.approx(mean, abs=1e-9)
        assert g["stdev_energy_j"] == pytest.approx(float(sps.tstd(values)), abs=1e-9)
        assert g["rel_stdev"] == pytest.approx(float(sps.tstd(values)) / mean, abs=1e-9)
        assert g["ci95_low_j"] == pytest.approx(low, abs=1e-6)
        assert g["ci95_high_j"] == pytest.approx(high, abs=1e-6)

    comp, gross = doc["comparisons"]
    assert gross["metric"] == "energy_per_unit_j"
    assert gross["ratio"] == pytest.approx(sum(_energies("python")) / sum(_energies("rust")))
    assert {"a", "b", "ratio", "ci95_low", "ci95_high", "p_value"} <= set(comp)
    assert (comp["a"], comp["b"]) == ("python", "rust")
    # With a baseline and a requests tag, the comparison is net energy per request.
    assert comp["metric"] == "net_energy_per_unit_j"
    net_py = [(w - IDLE_W) * d / REQUESTS for n, w, d in RUNS if n.startswith("python")]
    net_rs = [(w - IDLE_W) * d / REQUESTS for n, w, d in RUNS if n.startswith("rust")]
    assert comp["ratio"] == pytest.approx(sum(net_py) / sum(net_rs), rel=1e-9)
    assert comp["p_value"] == pytest.approx(
        float(sps.ttest_ind(net_py, net_rs, equal_var=False).pvalue), abs=1e-6)
    assert comp["ci95_low"] < comp["ratio"] < comp["ci95_high"]


def test_table_has_the_plain_english_answer(journal: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--journal", str(journal))
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("run "))
    assert "energy_j" in header
    assert "J/request" in header
    summary = next(line for line in lines if "needs" in line)
    py = sum(_energies("python")) / 3 / REQUESTS
    rs = sum(_energies("rust")) / 3 / REQUESTS
    assert summary.startswith("rust used ")
    assert "J per request (+/- " in summary
    assert f"needs {py / rs:.3f} x less energy" in summary
    # Columns are aligned: every row of the runs table is as wide as its rule.
    rule = lines[lines.index(header) + 1]
    assert set(rule) <= {"-", " "}


def test_csv_and_markdown(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 7
    rust1 = next(r for r in rows if r["run"] == "rust-1")
    assert float(rust1["energy_j"]) == pytest.approx(12.6)
    assert float(rust1["energy_per_unit_j"]) == pytest.approx(12.6 / REQUESTS)
    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "markdown")
    assert code == 0
    assert "## Runs" in out
    assert "| rust-1 | pi |" in out
    assert "needs" in out


def test_run_selection_per_and_group_by(journal: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "json",
                        "--run", "rust-*", "--run", "python-1")
    assert code == 0
    doc = json.loads(out)
    assert sorted(r["run"] for r in doc["runs"]) == ["python-1", "rust-1", "rust-2", "rust-3"]
    code, out, _ = _run(capsys, "--journal", str(journal), "--format", "json",
                        "--group-by", "lang", "--per", "lang")
    doc = json.loads(out)
    assert {g["group"] for g in doc["groups"]} == {"python", "rust"}
    assert all("energy_per_unit_j" not in r for r in doc["runs"])  # 'lang' is not a number
    assert any("no numeric 'lang' tag" in n for n in doc["notes"])


def test_open_run_torn_line_and_unknown_measurement_are_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = JournalBuilder().readings("pi", 0, 10, 1, power=3.0)
    b.marker("start", "done-1", 1).marker("stop", "done-1", 3)
    b.marker("start", "done-2", 4).marker("stop", "done-2", 5)
    b.raw("cpu,host=pi usage=3.5 1700000000000000000")
    b.marker("start", "still-running", 6)
    b.write(tmp_path, 1, torn="wattd_power,meter=pi power_w=3.0,volt")
    code, out, err = _run(capsys, "--journal", str(tmp_path), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    still = next(r for r in doc["runs"] if r["run"] == "still-running")
    assert still["status"] == "open"
    assert still["flags"]["open"] is True
    assert still["energy_j"] == pytest.approx(12.0)
    assert still["group"] is None
    assert [g["group"] for g in doc["groups"]] == ["done"]
    notes = " ".join(doc["notes"])
    assert "still-running" in notes
    assert "no stop" in notes
    assert "1 torn line" in notes
    assert "cpu (1)" in notes
    code, out, err = _run(capsys, "--journal", str(tmp_path))
    assert code == 0
    assert "open" in out
    assert "note: run still-running on meter pi has no stop" in err


def test_exit_codes_and_messages(tmp_path: Path, journal: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--journal", str(tmp_path / "missing"))
    assert code == 2
    assert "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, "--journal", str(empty))
    assert code == 1
    assert "no journal segments" in err
    code, _, err = _run(capsys, "--journal", str(journal), "--run", "java-*")
    assert code == 1
    assert "no run matches java-*" in err
    assert "rust-1" in err
    code, _, err = _run(capsys, "--journal", str(journal), "--baseline", "nap")
    assert code == 1
    assert "baseline run 'nap' not found" in err
    no_runs = tmp_path / "no-runs"
    JournalBuilder().readings("pi", 0, 3, 1, power=1.0).write(no_runs)
    code, _, err = _run(capsys, "--journal", str(no_runs))
    assert code == 1
    assert "no runs in the journal" in err


def test_journal_dir_from_config(journal: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "wattd.yaml"
    config.write_text(f"meters:\n  - name: pi\n    driver: simulated\njournal:\n"
                      f"  dir: {journal}\n", encoding="utf-8")
    code, out, _ = _run(capsys, "-c", str(config), "--format", "json")
    assert code == 0
    assert len(json.loads(out)["runs"]) == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("meters: []\njournall: {}\n", encoding="utf-8")
    code, _, err = _run(capsys, "-c", str(bad))
    assert code == 2
    assert "bad.yaml" in err


def test_plot_writes_a_png(journal: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    if os.environ.get("CI") != "true":
        pytest.importorskip("matplotlib")  # in CI the dev extras bring it: never skipped there
    png = tmp_path / "power.png"
    code, _, err = _run(capsys, "--journal", str(journal), "--plot", str(png))
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotted 7 run(s)" in err


def test_plot_without_matplotlib_names_the_extra(journal: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    code, out, err = _run(capsys, "--journal", str(journal), "--plot",
                          str(tmp_path / "p.png"))
    assert code == 1
    assert "pip install 'wattd[plot]'" in err
    assert out == ""


def test_report_as_a_real_command(journal: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "wattd", "report", "--journal", str(journal),
                           "--baseline", "idle", "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [c["metric"] for c in doc["comparisons"]] == ["net_energy_per_unit_j",
                                                          "energy_per_unit_j"]
    assert doc["runs"][0]["start_ns"] == ts(1.0)


def test_no_journal_and_no_config_is_a_usage_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WATTD_CONFIG", str(tmp_path / "absent.yaml"))
    code, _, err = _run(capsys)
    assert code == 2
    assert "give --journal DIR or -c FILE" in err


def test_a_run_without_readings_is_missing_data_left_out_of_the_statistics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # go-1..3 measured at 5 W; then the meter's port goes silent and go-4 runs
    # with no reading at all (the last one, before its start, would be held: a
    # number never measured). go-4 must show as missing data, not as 5 W x 4 s.
    durations = {"go-1": 4.0, "go-2": 5.0, "go-3": 6.0}
    b = JournalBuilder().readings("pi", 0, 20.5, 0.25, power=5.0)
    t = 0.5
    for name, dur in durations.items():
        b.marker("start", name, t, text="requests=100").marker("stop", name, t + dur)
        t += dur + 0.5
    b.marker("start", "go-4", 25.0, text="requests=100").marker("stop", "go-4", 29.0)
    b.write(tmp_path / "journal")
    code, out, _ = _run(capsys, "--journal", str(tmp_path / "journal"), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    runs = {r["run"]: r for r in doc["runs"]}
    silent = runs["go-4"]
    for key in ("energy_j", "mean_w", "min_w", "max_w", "energy_per_unit_j"):
        assert silent.get(key) is None, (key, silent)
    assert silent["flags"]["no_readings"] is True
    assert silent["group"] is None
    (group,) = doc["groups"]
    values = [5.0 * d for d in durations.values()]
    assert group["n"] == 3  # the measured runs only
    assert group["no_readings"] == 1
    assert group["runs"] == ["go-1", "go-2", "go-3"]
    assert group["mean_energy_j"] == pytest.approx(sum(values) / 3, abs=1e-9)
    assert group["stdev_energy_j"] == pytest.approx(float(sps.tstd(values)), abs=1e-9)
    assert group["energy_per_unit_j"]["n"] == 3
    assert any("1 run(s) without readings left out" in n for n in doc["notes"])
    (total,) = [t for t in doc["totals"] if t["run"] == "go-4"]
    assert total["energy_j"] is None
    code, out, _ = _run(capsys, "--journal", str(tmp_path / "journal"))
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("go-4 "))
    assert line.split()[2:4] == ["4.000", "-"]  # its duration is known, its energy is not
    assert "no_readings" in line
    group_lines = out.split("Groups")[1].splitlines()
    assert group_lines[1].split()[:4] == ["group", "meter", "n", "no_readings"]
    assert group_lines[3].split()[:4] == ["go", "pi", "3", "1"]
    code, out, _ = _run(capsys, "--journal", str(tmp_path / "journal"), "--format", "csv")
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["go-4"]["energy_j"] == ""
    assert "no_readings" in rows["go-4"]["flags"]
