"""Journal scan: runs from markers and energies over exact boundaries, on
hand-built journals whose answers are known exactly."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.report_journal import JournalBuilder, ts
from wattd.energy import integrate
from wattd.markers.timeline import decode_tags as parse_text_tags
from wattd.report.records import RunRecord, ScanResult
from wattd.report.scan import scan_journal


def _only(result: ScanResult, run: str, meter: str | None = None) -> RunRecord:
    found = [r for r in result.records
             if r.run == run and r.phase is None and (meter is None or r.meter == meter)]
    assert len(found) == 1, found
    return found[0]


def test_constant_power_boundaries_between_readings(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 10, 1, power=10.0)
    b.marker("start", "r", 2.5).marker("stop", "r", 7.5)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "r")
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx(50.0, abs=1e-9)
    assert rec.result.duration_s == pytest.approx(5.0)
    assert rec.result.samples == 5  # readings at 3..7 s
    assert (rec.result.min_w, rec.result.max_w) == (10.0, 10.0)
    assert rec.end == "stop"
    assert rec.result.extrapolated_s == 0


def test_power_changing_inside_run_is_interpolated(tmp_path: Path) -> None:
    # power = t watts: the exact integral over [0.5, 3.5] is (3.5^2 - 0.5^2)/2 = 6 J.
    b = JournalBuilder().readings("a", 0, 5, 1)
    b.marker("start", "ramp", 0.5).marker("stop", "ramp", 3.5)
    # Steps: 10 W, 20 W, 20 W, 10 W at 10..13 s; run [10.5, 12.5] -> 37.5 J.
    for t, p in [(10, 10.0), (11, 20.0), (12, 20.0), (13, 10.0)]:
        b.power("a", t, p)
    b.marker("start", "steps", 10.5).marker("stop", "steps", 12.5)
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    ramp = _only(result, "ramp").result
    steps = _only(result, "steps").result
    assert ramp is not None
    assert steps is not None
    assert ramp.energy_j == pytest.approx(6.0, abs=1e-9)
    assert ramp.mean_w == pytest.approx(2.0, abs=1e-9)
    assert (ramp.min_w, ramp.max_w, ramp.samples) == (1.0, 3.0, 3)
    assert steps.energy_j == pytest.approx(37.5, abs=1e-9)
    assert steps.max_w == 20.0


def test_same_answer_as_the_shared_integral(tmp_path: Path) -> None:
    pts = [(ts(i * 0.37), 3.0 + (i % 7) * 0.41) for i in range(200)]
    b = JournalBuilder()
    for t, p in pts:
        b.power("a", (t - ts(0)) / 1e9, p)
    b.marker("start", "x", 3.333).marker("stop", "x", 61.01)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "x")
    assert rec.result == integrate(pts, ts(3.333), ts(61.01))


def test_gzip_and_plain_segments_give_the_same_energy(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 4, 0.5)
    b.marker("start", "r", 1.25)
    b.write(tmp_path, 1, gz=True)
    b.readings("a", 4.5, 8, 0.5).marker("stop", "r", 6.75)
    b.write(tmp_path, 2, gz=True)
    b.readings("a", 8.5, 9, 0.5)
    b.write(tmp_path, 3)
    rec = _only(scan_journal(tmp_path), "r")
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx((6.75**2 - 1.25**2) / 2, abs=1e-9)
    result = scan_journal(tmp_path)
    assert result.stats.segments == 3
    assert result.stats.readings == 19


def test_plain_segment_preferred_when_both_exist(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 4, 1, power=5.0)
    b.marker("start", "r", 1).marker("stop", "r", 3)
    path = b.write(tmp_path, 1)
    with gzip.open(tmp_path / "00000001.lp.gz", "wb") as fh:
        fh.write(path.read_bytes())
    result = scan_journal(tmp_path)
    assert result.stats.segments == 1
    assert len(result.records) == 1


def test_torn_line_bad_lines_and_unknown_measurements_are_counted(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 4, 1, power=5.0)
    b.marker("start", "r", 1).marker("stop", "r", 3)
    b.raw("cpu,host=pi usage_idle=97.5 1700000000000000000")
    b.raw("this is not line protocol")
    b.raw("wattd_power,meter=a power_w=oops 1700000000000000000")
    b.raw("wattd_power,meter=a power_w=5.0,volwattd_power,meter=a power_w=9.0 "
          "1700000000000000000")
    b.write(tmp_path, 1, gz=True)
    b.readings("a", 5, 6, 1, power=5.0)
    b.write(tmp_path, 2, torn="wattd_power,meter=a power_w=99")
    result = scan_journal(tmp_path)
    stats = result.stats
    assert stats.torn_lines == 1
    assert stats.bad_lines == 3
    assert stats.unknown == {"cpu": 1}
    assert stats.readings == 7
    rec = _only(result, "r")
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx(10.0)


def test_truncated_gzip_segment_is_read_up_to_the_damage(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 2000, 1, power=5.0)
    path = b.write(tmp_path, 1, gz=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    b.marker("start", "r", 2001).readings("a", 2001, 2005, 1, power=5.0)
    b.marker("stop", "r", 2003)
    b.write(tmp_path, 2)
    result = scan_journal(tmp_path)
    assert len(result.stats.damaged_segments) == 1
    assert 5 < result.stats.readings < 2001 + 5
    rec = _only(result, "r")
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx(10.0)


def test_open_run_is_integrated_to_the_last_reading_and_flagged(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 10, 1, power=4.0)
    b.marker("start", "copied-mid-run", 6.5)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "copied-mid-run")
    assert rec.is_open
    assert rec.stop_ns is None
    assert rec.integrated_to_ns == ts(10)
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx(14.0)


def test_open_run_without_readings_after_start(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 3, 1, power=4.0)
    b.marker("start", "late", 5)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "late")
    assert rec.is_open
    assert rec.result is None
    assert rec.note is not None


def test_overlapping_runs_on_different_meters(tmp_path: Path) -> None:
    b = JournalBuilder()
    b.marker("start", "x", 1, meter="a")
    for i in range(11):
        b.power("a", i, 10.0)
        b.power("b", i + 0.5, 2.0 * (i + 0.5))
        if i == 3:
            b.marker("start", "y", 3.0, meter="b")
        if i == 5:
            b.marker("stop", "x", 5.0, meter="a")
        if i == 8:
            b.marker("stop", "y", 8.0, meter="b")
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    x = _only(result, "x")
    y = _only(result, "y")
    assert [r.meter for r in result.records] == ["a", "b"]
    assert x.meter == "a"
    assert x.result is not None
    assert x.result.energy_j == pytest.approx(40.0)
    assert y.result is not None
    assert y.result.energy_j == pytest.approx(8.0**2 - 3.0**2)  # power = 2t


def test_start_without_meter_applies_to_every_meter_even_one_seen_later(
        tmp_path: Path) -> None:
    b = JournalBuilder()
    b.power("a", 0, 1.0)
    b.marker("start", "all", 0.5, text="requests=10 lang=rust")
    for i in range(1, 6):
        b.power("a", i, 1.0)
        b.power("late", i, 3.0)
    b.marker("stop", "all", 4.5)
    b.power("a", 6, 1.0)
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    a = _only(result, "all", "a")
    late = _only(result, "all", "late")
    assert a.result is not None
    assert late.result is not None
    assert a.result.energy_j == pytest.approx(4.0)
    # Power held from the first reading of a meter first seen inside the run.
    assert late.result.energy_j == pytest.approx(12.0)
    assert late.result.extrapolated_s == pytest.approx(0.5)
    assert a.tags == {"requests": "10", "lang": "rust"}


def test_marker_journaled_after_the_readings_around_its_boundary(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 3, 0.25)
    b.marker("start", "r", 1.1)  # the readings at 1.25 .. 3 s were journaled first
    b.readings("a", 3.25, 6, 0.25)
    b.marker("stop", "r", 5.3)
    b.readings("a", 6.25, 7, 0.25)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "r")
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx((5.3**2 - 1.1**2) / 2, abs=1e-9)


def test_stop_without_a_later_reading_holds_the_last_power(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 4, 1, power=6.0)
    b.marker("start", "r", 1).marker("stop", "r", 5.5)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "r")
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx(27.0)
    assert rec.result.extrapolated_s == pytest.approx(1.5)
    assert not rec.is_open


def test_abort_stop_without_start_and_daemon_results(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 10, 1, power=2.0)
    b.marker("start", "ab", 1).marker("abort", "ab", 2)
    b.marker("stop", "never-started", 3)
    b.marker("start", "r", 4).marker("stop", "r", 6)
    b.run_point("r", "a", 4, 6, energy_j=4.0, counter_energy_j=4.1, gap_s=0.5,
                clock_step=True)
    b.marker("start", "expired", 7)
    b.run_point("expired", "a", 7, 9, energy_j=4.0, aborted=True)
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    ab = _only(result, "ab")
    assert ab.aborted
    assert ab.end == "abort"
    r = _only(result, "r")
    assert r.counter_energy_j == 4.1
    assert r.daemon_energy_j == 4.0
    assert r.gap_s == 0.5
    assert r.clock_step
    assert r.result is not None
    assert r.result.energy_j == pytest.approx(4.0)
    expired = _only(result, "expired")
    assert expired.end == "daemon"
    assert expired.aborted
    assert expired.stop_ns == ts(9)
    assert any("never-started" in n for n in result.stats.notes)


def test_phases_and_repeated_names(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 20, 1, power=3.0)
    b.marker("start", "job", 1)
    b.marker("start", "job", 2, phase="warmup")
    b.marker("start", "job", 4, phase="measure")  # closes warmup
    b.marker("stop", "job", 9)  # closes measure too
    b.marker("start", "job", 10).marker("stop", "job", 12)
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    runs = [r for r in result.records if r.phase is None]
    phases = {r.phase: r for r in result.records if r.phase is not None}
    assert [r.result.energy_j for r in runs if r.result] == pytest.approx([24.0, 6.0])
    assert phases["warmup"].result is not None
    assert phases["warmup"].result.energy_j == pytest.approx(6.0)
    assert phases["measure"].result is not None
    assert phases["measure"].result.energy_j == pytest.approx(15.0)


def test_escaped_tags_take_the_slow_path(tmp_path: Path) -> None:
    b = JournalBuilder()
    for i in range(5):
        b.power("bench meter,1", i, 7.0, note="a b")
    b.marker("start", "r", 1).marker("stop", "r", 3)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path), "r")
    assert rec.meter == "bench meter,1"
    assert rec.result is not None
    assert rec.result.energy_j == pytest.approx(14.0)


def test_marker_text_tags_are_percent_decoded() -> None:
    assert parse_text_tags("requests=500000 note=two%20words") == {
        "requests": "500000", "note": "two words"}


def test_plot_points_are_kept_within_the_run_and_bounded(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 99.75, 0.25, power=1.0)
    b.marker("start", "r", 100)
    b.readings("a", 100, 2899.75, 0.25, power=1.0)
    b.marker("stop", "r", 2900)
    b.readings("a", 2900, 3001, 0.25, power=1.0)
    b.write(tmp_path)
    rec = _only(scan_journal(tmp_path, plot=True), "r")
    assert rec.plot is not None
    assert 1000 < len(rec.plot) < 8000
    assert all(ts(100) <= t <= ts(2900) for t, _ in rec.plot)


def test_phase_without_meter_follows_its_run_meters(tmp_path: Path) -> None:
    b = JournalBuilder()
    for i in range(10):
        b.power("a", i, 1.0).power("b", i, 2.0)
        if i == 1:
            b.marker("start", "only-a", 1, meter="a")
            b.marker("start", "only-a", 1.5, phase="p")
        if i == 5:
            b.marker("stop", "only-a", 5, meter="a")
    b.write(tmp_path)
    phases = [r for r in scan_journal(tmp_path).records if r.phase == "p"]
    assert [r.meter for r in phases] == ["a"]
    assert phases[0].result is not None
    assert phases[0].result.energy_j == pytest.approx(3.5)


def test_a_run_no_reading_measured_has_no_energy_as_in_the_daemon(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 2, 1, power=6.0)
    b.marker("start", "across", 2.25).marker("stop", "across", 2.75)  # none inside
    b.readings("a", 3, 4, 1, power=6.0)  # then the meter goes silent
    b.marker("start", "silent", 5).marker("stop", "silent", 8)
    b.marker("start", "never", 9, meter="dead").marker("stop", "never", 10, meter="dead")
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    across = _only(result, "across")
    assert across.result is not None  # interpolated between 2 s and 3 s: measured
    assert across.result.energy_j == pytest.approx(3.0)
    assert not across.no_readings
    for name in ("silent", "never"):
        rec = _only(result, name)
        assert rec.no_readings, name
        assert rec.result is None, name  # never the 6 W of 4 s held over the run
        assert rec.stop_ns is not None


def test_the_daemons_no_readings_verdict_stands_against_a_late_bracketing_reading(
        tmp_path: Path) -> None:
    from wattd.lineprotocol import format_line

    b = JournalBuilder().readings("a", 0, 2, 1, power=6.0)
    b.marker("start", "r", 3).marker("stop", "r", 5)
    # The daemon answered after stop_wait_s with no reading: its point says so...
    b.lines.append(format_line("wattd_run", {"run": "r", "meter": "a"},
                               {"duration_s": 2.0, "samples": 0, "start_ns": ts(3),
                                "gap_s": 2.0, "no_readings": True}, ts(5)))
    b.readings("a", 30, 31, 1, power=6.0)  # ...the meter came back 25 s later
    b.marker("start", "later", 30.5).marker("stop", "later", 30.75)
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    rec = _only(result, "r")
    assert rec.no_readings
    assert rec.result is None  # as the stop reply said, not a 28 s interpolation
    later = _only(result, "later")
    assert later.result is not None
    assert later.result.energy_j == pytest.approx(1.5)


def test_readings_without_power_during_the_run_count_as_delivery(tmp_path: Path) -> None:
    from wattd.lineprotocol import format_line

    b = JournalBuilder()
    for i in range(1, 12):  # a GB202 at a few watts: frames, no power refresh yet
        b.lines.append(format_line("wattd_power", {"meter": "a"},
                                   {"voltage_v": 230.0, "clock_synced": True}, ts(i / 10)))
    b.marker("start", "low", 0.3).marker("stop", "low", 0.7)
    b.power("a", 1.2, 4.0)  # the first refresh, after the stop
    b.marker("start", "mute", 2.0, meter="b").marker("stop", "mute", 3.0, meter="b")
    b.lines.append(format_line("wattd_power", {"meter": "b"}, {"voltage_v": 230.0},
                               ts(2.5)))  # frames, but never a power value
    b.write(tmp_path)
    result = scan_journal(tmp_path)
    low = _only(result, "low")
    assert not low.no_readings
    assert low.result is not None
    assert low.result.energy_j == pytest.approx(1.6)  # as the daemon: held from 1.2 s
    mute = _only(result, "mute")
    assert mute.no_readings  # no power to integrate: no energy, never 0 J
    assert mute.result is None
