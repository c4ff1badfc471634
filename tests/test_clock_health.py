"""Clock health verdicts, transitions, step detection, through an injectable adjtimex reader."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.clock_helpers import FakeClock, RecordingLog
from wattd.clock import adjtimex as ax
from wattd.clock.health import ClockHealth, ClockStep, StepDetector, assess, step_marker_line
from wattd.lineprotocol import parse_line

S = 1_000_000_000
MS = 1_000_000


def _health(state: ax.KernelClockState, **kw: Any) -> tuple[ClockHealth, ax.StaticReader,
                                                            FakeClock, RecordingLog]:
    reader, clock, log = ax.StaticReader(state), FakeClock(), RecordingLog()
    return ClockHealth(reader, clock, logger=log, **kw), reader, clock, log


# -- verdict -----------------------------------------------------------------

def test_synced_chrony_within_limit() -> None:
    verdict = assess(ax.SYNCED_CHRONY, 100)
    assert verdict.synced
    assert verdict.basis == "kernel_flag"
    assert verdict.maxerror_ms == 8.0


def test_large_error_is_unsynced_even_with_the_flag_clear() -> None:
    verdict = assess(ax.SYNCED_CHRONY, 5)  # maxerror 8 ms > 5 ms
    assert not verdict.synced
    assert verdict.basis == "error_too_large"


def test_unsynced_kernel() -> None:
    verdict = assess(ax.UNSYNCED, 100)
    assert not verdict.synced
    assert verdict.basis == "unsynchronised"


def test_timesyncd_is_synced_with_unknown_error() -> None:
    # maxerror 300 ms is only "time since the last update"; must not fail a 100 ms limit
    verdict = assess(ax.SYNCED_TIMESYNCD, 100)
    assert verdict.synced
    assert verdict.basis == "no_estimate"
    assert not verdict.error_known


def test_chrony_without_rtcsync_trusts_the_error_bound() -> None:
    verdict = assess(ax.CHRONY_NO_RTCSYNC, 100)
    assert verdict.synced
    assert verdict.basis == "error_bound"
    assert not assess(ax.CHRONY_NO_RTCSYNC, 1).synced


def test_unreadable_kernel_state_is_unsynced() -> None:
    verdict = assess(None, 100, "Operation not permitted")
    assert not verdict.synced
    assert "Operation not permitted" in verdict.reason


# -- monitor -----------------------------------------------------------------

def test_transitions_logged_once_each() -> None:
    health, reader, clock, log = _health(ax.UNSYNCED)
    for _ in range(3):
        health.poll()
        clock.advance(5 * S)
    assert not health.synced
    reader.state = ax.SYNCED_CHRONY
    for _ in range(3):
        health.poll()
        clock.advance(5 * S)
    assert health.synced
    reader.state = ax.KernelClockState(ax.TIME_OK, ax.STA_PLL, maxerror_us=250_000,
                                       esterror_us=100)  # error grew past 100 ms
    health.poll()
    health.poll()
    assert not health.synced
    assert log.names() == ["clock_unsynchronised", "clock_synchronised",
                           "clock_unsynchronised"]
    assert health.transitions == 2
    assert health.polls == 8


def test_rtcsync_hint_logged_once() -> None:
    health, _, _, log = _health(ax.CHRONY_NO_RTCSYNC)
    health.poll()
    health.poll()
    assert log.names().count("clock_flag_unsync_with_live_error_bound") == 1
    assert health.status()["basis"] == "error_bound"


def test_read_error_counted_not_raised() -> None:
    health, reader, _, _ = _health(ax.SYNCED_CHRONY)
    reader.error = PermissionError(1, "Operation not permitted")
    verdict = health.poll()
    assert not verdict.synced
    assert health.read_errors == 1
    reader.error = None
    assert health.poll().synced


def test_status_dict() -> None:
    health, _, _, _ = _health(ax.SYNCED_TIMESYNCD, max_error_ms=50)
    assert health.status()["basis"] == "not_polled"
    health.poll()
    status = health.status()
    assert status["synced"] is True
    assert status["error_known"] is False
    assert status["max_error_ms"] == 50
    assert status["kernel"]["state"] == "TIME_OK"  # type: ignore[index]


def test_step_detected_and_reported() -> None:
    steps: list[ClockStep] = []
    health, _, clock, log = _health(ax.SYNCED_CHRONY, step_threshold_ms=50,
                                    on_step=steps.append)
    health.poll()
    clock.advance(5 * S)
    health.poll()
    assert steps == []
    before = clock.boot
    clock.advance(5 * S)
    clock.offset -= 2 * S  # realtime stepped back by 2 s
    health.poll()
    assert len(steps) == 1
    assert steps[0].step_ns == -2 * S
    assert steps[0].boot_before_ns == before
    assert "clock_step" in log.names()
    assert health.status()["steps"] == 1
    point = parse_line(step_marker_line(steps[0]))
    assert point.measurement == "wattd_marker"
    assert point.tags == {"run": "clock_step", "verb": "event"}
    assert point.fields["text"] == "step_ms=-2000.000"
    assert point.t_ns == clock.realtime_ns()


def test_small_offset_changes_are_not_steps() -> None:
    detector = StepDetector(threshold_ms=50)
    assert detector.observe(0, 0, 0) is None
    # 50 ms + 500 ppm of 10 s = 55 ms allowed
    assert detector.observe(55 * MS, 10 * S, 0) is None
    assert detector.observe(55 * MS + 56 * MS, 20 * S, 0) is not None
    assert detector.count == 1


def test_stepped_between_over_bounded_history() -> None:
    detector = StepDetector(threshold_ms=50, history=2)
    detector.observe(0, 100 * S, 0)
    detector.observe(S, 105 * S, 0)  # step somewhere in [100 s, 105 s]
    assert detector.stepped_between(90 * S, 101 * S)
    assert detector.stepped_between(104 * S, 200 * S)
    assert detector.stepped_between(200 * S, 90 * S)  # order does not matter
    assert not detector.stepped_between(106 * S, 200 * S)
    assert not detector.stepped_between(10 * S, 99 * S)
    detector.observe(2 * S, 110 * S, 0)
    detector.observe(3 * S, 115 * S, 0)  # history of 2: the first step is forgotten
    assert not detector.stepped_between(100 * S, 104 * S)
    assert detector.count == 3


def test_failing_step_callback_does_not_stop_the_monitor() -> None:
    def boom(step: ClockStep) -> None:
        raise RuntimeError("bug")

    health, _, clock, log = _health(ax.SYNCED_CHRONY, on_step=boom)
    health.poll()
    clock.offset += S
    health.poll()
    assert "clock_step_callback_failed" in log.names()
    assert health.stepped_between(0, clock.boot)


def test_real_clocks_show_no_step() -> None:
    health = ClockHealth(ax.StaticReader(ax.SYNCED_CHRONY), logger=RecordingLog())
    for _ in range(20):
        health.poll()
    assert health.steps.count == 0


async def test_async_start_polls_at_once_and_stops_cleanly() -> None:
    health, reader, _, _ = _health(ax.SYNCED_CHRONY, poll_interval_s=0.01)
    task = health.start()
    assert health.synced  # first poll happened synchronously
    for _ in range(500):  # bounded wait for 3 more periodic polls
        if reader.reads >= 4:
            break
        await asyncio.sleep(0.01)
    assert reader.reads >= 4
    await health.stop()
    assert task.done()
    reads = reader.reads
    await asyncio.sleep(0.05)
    assert reader.reads == reads
    await health.stop()  # idempotent


@pytest.mark.parametrize("state", [ax.UNSYNCED, ax.SYNCED_CHRONY])
def test_verdict_matches_canned_state(state: ax.KernelClockState) -> None:
    health, _, _, _ = _health(state)
    assert health.poll().synced == (state is ax.SYNCED_CHRONY)


def test_stepped_between_sees_a_step_before_the_next_poll() -> None:
    # a run stopping right after a step, before the periodic poll: must still be flagged
    steps: list[ClockStep] = []
    health, _, clock, _ = _health(ax.SYNCED_CHRONY, on_step=steps.append)
    health.poll()
    run_start = clock.boot
    clock.advance(S)
    clock.offset -= 500 * MS
    clock.advance(S)
    assert health.stepped_between(run_start, clock.boot)
    assert len(steps) == 1  # reported once, not again by the next poll
    health.poll()
    assert len(steps) == 1


def test_stepped_between_before_any_poll_is_false() -> None:
    health, _, clock, _ = _health(ax.SYNCED_CHRONY)
    assert not health.stepped_between(0, clock.boot)
