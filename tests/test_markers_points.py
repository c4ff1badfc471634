"""The journal points markers write, and the marks read back from them."""

from __future__ import annotations

from wattd.energy import EnergyResult
from wattd.lineprotocol import parse_line
from wattd.markers.intervals import Interval
from wattd.markers.points import mark_of, marker_line, run_line
from wattd.markers.timeline import Mark


def test_a_marker_line_reads_back_as_the_same_mark() -> None:
    line = marker_line("start", "r", "10.0.0.2", 1_700_000_000_000_000_000, phase="p",
                       meter="m", tags={"note": "two words", "n": "5"}, skew_ms=1.5)
    point = parse_line(line)
    assert point.tags == {"run": "r", "verb": "start", "source": "10.0.0.2", "phase": "p",
                          "meter": "m"}
    assert point.fields == {"text": "note=two%20words n=5", "skew_ms": 1.5}
    assert mark_of(point) == Mark("start", "r", "p", "m", {"note": "two words", "n": "5"})


def test_events_and_damaged_markers_are_no_mark() -> None:
    assert mark_of(parse_line(marker_line("event", "r", "h", 1))) is None
    assert mark_of(parse_line('wattd_marker,verb=stop text="" 1')) is None  # no run


def test_run_line_fields() -> None:
    interval = Interval(meter="m", run="r", phase=None, tags={"k": "v"}, start_rt_ns=10,
                        start_boot_ns=0)
    interval.stop_rt_ns, interval.stop_boot_ns = 2_000_000_010, 2_000_000_000
    energy = EnergyResult(4.0, 2.0, 2.0, 1.0, 3.0, 20, 0.0)
    point = parse_line(run_line(interval, energy, 4.1, clock_step=True))
    assert point.measurement == "wattd_run"
    assert point.tags == {"k": "v", "run": "r", "meter": "m"}
    assert point.t_ns == 2_000_000_010
    assert point.fields["energy_j"] == 4.0
    assert point.fields["counter_energy_j"] == 4.1
    assert point.fields["clock_step"] is True
    aborted = parse_line(run_line(interval, energy, 4.1, clock_step=False, aborted=True))
    assert aborted.fields["aborted"] is True
    assert "energy_j" not in aborted.fields
    assert aborted.fields["duration_s"] == 2.0


def test_a_run_line_without_readings_has_no_energy_fields() -> None:
    interval = Interval(meter="m1", run="r", phase=None, tags={}, start_rt_ns=10,
                        start_boot_ns=0)
    interval.stop_rt_ns, interval.stop_boot_ns = 2_400_000_010, 2_400_000_000
    point = parse_line(run_line(interval, None, None, clock_step=False))
    assert point.fields["no_readings"] is True
    for key in ("energy_j", "mean_w", "min_w", "max_w", "extrapolated_s", "counter_energy_j"):
        assert key not in point.fields
    assert point.fields["samples"] == 0
    assert point.fields["duration_s"] == 2.4
    assert point.fields["gap_s"] == 2.4
    assert "aborted" not in point.fields
    aborted = parse_line(run_line(interval, None, None, clock_step=False, aborted=True))
    assert "no_readings" not in aborted.fields  # an abort has no result at all
