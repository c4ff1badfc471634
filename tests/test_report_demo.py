"""`wattd demo`: the plan and profile, and the whole demo end to end as a subprocess
(daemon with a simulated meter, real UDP markers, report from its journal)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import census, chromium_or_skip, render
from wattd.cli.main import main
from wattd.report.demo import (
    PI_MS_PER_REQUEST,
    PI_WATTS,
    DemoError,
    plan,
    prepare_dir,
)
from wattd.simulator.power_profile import PowerProfile


def test_plan_fits_a_minute_and_profile_matches_the_schedule() -> None:
    p = plan()
    assert p.requests == 250
    assert p.end_s < 45  # plus daemon start-up and the report: under a minute
    names = [r.name for r in p.runs]
    assert names == ["idle", "python-1", "rust-1", "python-2", "rust-2", "python-3", "rust-3"]
    profile = PowerProfile.parse(p.profile)
    for run in p.runs:
        duration = run.stop_s - run.start_s
        if run.workload != "idle":
            pi_s = 500_000 * PI_MS_PER_REQUEST[run.workload] / 1000 / 2000
            assert duration == pytest.approx(pi_s, rel=0.06)
        samples = [profile.power_at(run.start_s + duration * k / 20) for k in range(20)]
        mean = sum(samples) / len(samples)
        assert mean == pytest.approx(PI_WATTS[run.workload], rel=0.06)
    # Between runs the Pi idles.
    gap = p.runs[1].stop_s + 0.5
    assert profile.power_at(gap) == pytest.approx(PI_WATTS["idle"], rel=0.05)
    assert plan().profile == p.profile  # deterministic


def test_plan_refuses_a_scale_that_does_not_divide_the_requests() -> None:
    with pytest.raises(ValueError):
        plan(3000)


def test_demo_dir_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(DemoError):
        prepare_dir(tmp_path)
    assert (tmp_path / "precious.txt").exists()
    ours = tmp_path / "demo"
    prepare_dir(ours)
    (ours / "journal").mkdir()
    (ours / "journal" / "00000001.lp").write_text("old\n", encoding="utf-8")
    prepare_dir(ours)  # a previous demo: its journal is cleared
    assert not (ours / "journal" / "00000001.lp").exists()


@pytest.mark.timeout(300)  # ~25 s here; room for a loaded 2-core CI machine
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo_dir = tmp_path / "wattd-demo"
    proc = subprocess.run(
        [sys.executable, "-m", "wattd", "demo", "--dir", str(demo_dir), "--time-scale", "5000"],
        capture_output=True, text=True, timeout=280, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "time compressed 5000x" in out
    assert "rust needs" in out
    assert "x less energy" in out
    journal = demo_dir / "journal"
    assert f"curl --data-binary @{journal / '00000001.lp'}" in out
    assert "http://localhost:8086/write?db=wattd" in out

    # The report of the journal the demo left behind.
    assert main(["report", "--journal", str(journal), "--baseline", "idle",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    runs = {r["run"]: r for r in doc["runs"]}
    assert set(runs) == {"idle", "python-1", "rust-1", "python-2", "rust-2", "python-3",
                         "rust-3"}
    for r in runs.values():
        assert r["status"] == "ok"
        # The report integrates the journal as the daemon did online (stop reply).
        assert r["energy_j"] == pytest.approx(r["daemon_energy_j"], rel=1e-3)
    assert runs["python-1"]["tags"] == {"lang": "python", "requests": "100"}
    groups = {g["group"]: g for g in doc["groups"]}
    for lang in ("python", "rust"):
        pi_j_per_request = PI_WATTS[lang] * PI_MS_PER_REQUEST[lang] / 1000
        assert groups[lang]["n"] == 3
        assert groups[lang]["energy_per_unit_j"]["mean_j"] == pytest.approx(
            pi_j_per_request, rel=0.15)
    gross = next(c for c in doc["comparisons"] if c["metric"] == "energy_per_unit_j")
    assert (gross["a"], gross["b"]) == ("python", "rust")
    assert 2.5 < gross["ratio"] < 4.5

    # The simulated ab's results and probe's CPU samples joined their runs.
    for name, r in runs.items():
        assert r["cpu_s"] is not None, name
        assert r["cpu_s"] > 0
        if name != "idle":
            assert r["requests"] == 100
            assert r["time_per_request_ms"] == pytest.approx(
                1000 * r["duration_s"] / 100, rel=0.02)
            assert len(r["latency_ms"]) == 9
    assert runs["python-1"]["cpu_pct_mean"] == pytest.approx(98, rel=0.1)
    assert runs["rust-1"]["cpu_pct_mean"] == pytest.approx(360, rel=0.1)
    speed = next(c for c in doc["comparisons"] if c["metric"] == "time_per_request_ms")
    assert speed["ratio"] == pytest.approx(21.4 / 5.7, rel=0.1)
    assert any(c["metric"] == "cpu_per_unit_s" for c in doc["comparisons"])

    # Its HTML report, rendered by a real browser: all five figures with their data.
    page = demo_dir / "report.html"
    assert f"HTML report (figures and tables, opens offline): {page}" in out
    chromium_or_skip()
    shown = render(page, tmp_path, height=3000)
    assert shown.console == []
    dom = census(shown.dom)
    assert [k for k in dom.svgs if k.startswith("fig-")] == [
        "fig-time-per-request", "fig-power", "fig-cpu", "fig-latency-cdf",
        "fig-energy-per-unit"]
    for fig in ("fig-power", "fig-cpu"):
        assert dom.svgs[fig]["data-runs"] == "7"
    for fig in ("fig-time-per-request", "fig-latency-cdf", "fig-energy-per-unit"):
        assert dom.svgs[fig]["data-groups"] == "python|rust"
    from PIL import Image

    colours = Image.open(io.BytesIO(shown.png)).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 1  # not blank
    docs = os.environ.get("WATTD_DOCS_SCREENSHOT")
    if docs:  # how docs/report-html.png is made: this test's browser, on the demo
        shutil.copyfile(tmp_path / "report.png", docs)
