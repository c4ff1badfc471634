"""clock.require_sync: readings held until the kernel reports sync, bounded, with a timeout."""

from __future__ import annotations

from typing import Any

from tests.clock_helpers import FakeClock, RecordingLog
from wattd.clock import adjtimex as ax
from wattd.clock.gate import ClockStamp, SyncGate, default_capacity
from wattd.clock.health import ClockHealth
from wattd.readings import Reading

S = 1_000_000_000


def _reading(i: int) -> Reading:
    return Reading(meter="m1", t_ns=i, t_boot_ns=i, power_w=float(i))


def stamp(gate: SyncGate, reading: Reading) -> Reading:
    """The pipeline's first stage, on the gate's verdict."""
    return ClockStamp(gate.is_synced).push(reading)


def release(gate: SyncGate, readings: list[Reading], now_boot_ns: int) -> list[Reading]:
    """One pipeline cycle through the gate: readings in, what may be written now out."""
    out = [passed for r in readings if (passed := gate.push(r)) is not None]
    return out + gate.pop_ready(now_boot_ns)


def _setup(state: ax.KernelClockState, **kw: Any) -> tuple[SyncGate, ClockHealth,
                                                          ax.StaticReader, FakeClock,
                                                          RecordingLog]:
    reader, clock, log = ax.StaticReader(state), FakeClock(), RecordingLog()
    health = ClockHealth(reader, clock, logger=log, max_error_ms=100)
    health.poll()
    kw.setdefault("require_sync", True)
    kw.setdefault("timeout_s", 60)
    gate = SyncGate(lambda: health.synced, start_boot_ns=clock.boot, logger=log, **kw)
    return gate, health, reader, clock, log


def test_not_required_passes_through_and_still_stamps() -> None:
    gate, _, _, clock, _ = _setup(ax.UNSYNCED, require_sync=False)
    r = stamp(gate, _reading(1))
    assert r.clock_synced is False
    assert release(gate, [r], clock.boot) == [r]
    assert gate.status()["holding"] is False


def test_held_until_sync_then_released_in_order() -> None:
    gate, health, reader, clock, log = _setup(ax.UNSYNCED)
    taken = [stamp(gate, _reading(i)) for i in range(5)]
    assert all(not r.clock_synced for r in taken)
    for r in taken:
        clock.advance(S)
        assert release(gate, [r], clock.boot) == []
    assert gate.status()["held"] == 5
    assert "clock_waiting_for_sync" in log.names()

    reader.state = ax.SYNCED_CHRONY
    health.poll()
    late = stamp(gate, _reading(5))
    assert late.clock_synced
    out = release(gate, [late], clock.boot)
    assert [r.power_w for r in out] == [0, 1, 2, 3, 4, 5]
    assert [r.clock_synced for r in out] == [False] * 5 + [True]
    assert gate.status() == {"require_sync": True, "holding": False, "held": 0, "dropped": 0,
                             "opened_by": "synchronised", "released_unsynced": 5}
    # the gate stays open even if sync is lost again
    reader.state = ax.UNSYNCED
    health.poll()
    r = stamp(gate, _reading(6))
    assert release(gate, [r], clock.boot) == [r]
    assert r.clock_synced is False


def test_large_error_keeps_holding() -> None:
    big = ax.KernelClockState(ax.TIME_OK, ax.STA_PLL, maxerror_us=500_000, esterror_us=1000)
    gate, _, _, clock, _ = _setup(big)
    assert release(gate, [stamp(gate, _reading(1))], clock.boot) == []


def test_timeout_releases_everything_with_an_error() -> None:
    gate, _, _, clock, log = _setup(ax.UNSYNCED, timeout_s=30)
    clock.advance(29 * S)
    assert release(gate, [stamp(gate, _reading(1))], clock.boot) == []
    clock.advance(1 * S)
    out = release(gate, [stamp(gate, _reading(2))], clock.boot)
    assert [r.power_w for r in out] == [1, 2]
    assert all(not r.clock_synced for r in out)
    errors = [e for e in log.events if e[1] == "clock_sync_timeout"]
    assert len(errors) == 1
    assert errors[0][0] == "error"
    assert gate.status()["opened_by"] == "timeout"


def test_release_with_nothing_new_opens_on_timeout() -> None:
    # the daemon polls the gate every 50 ms even without new readings
    gate, _, _, clock, _ = _setup(ax.UNSYNCED, timeout_s=1)
    release(gate, [stamp(gate, _reading(1))], clock.boot)
    clock.advance(2 * S)
    assert [r.power_w for r in release(gate, [], clock.boot)] == [1]


def test_overflow_drops_oldest_counted_and_logged_as_error() -> None:
    gate, _, _, clock, log = _setup(ax.UNSYNCED, capacity=3)
    release(gate, [stamp(gate, _reading(i)) for i in range(5)], clock.boot)
    assert gate.status()["held"] == 3
    assert gate.dropped == 2
    assert any(e[0] == "error" and e[1] == "clock_waiting_for_sync" for e in log.events)
    assert [r.power_w for r in gate.flush_all()] == [2, 3, 4]


def test_status_line_rate_limited() -> None:
    gate, _, _, clock, log = _setup(ax.UNSYNCED, timeout_s=600, status_every_s=10)
    for i in range(100):  # 10 readings/s for 10 s
        release(gate, [stamp(gate, _reading(i))], clock.boot)
        clock.advance(S // 10)
    assert log.names().count("clock_waiting_for_sync") == 1
    clock.advance(S)
    release(gate, [], clock.boot)
    assert log.names().count("clock_waiting_for_sync") == 2


def test_default_capacity_is_ten_minutes_at_ten_per_second_per_meter() -> None:
    assert default_capacity(1) == 6000
    assert default_capacity(3) == 18000
    assert default_capacity(0) == 6000
