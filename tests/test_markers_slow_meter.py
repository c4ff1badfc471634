"""The run engine with a meter polled once a second (a smart plug, SPEC 8): a run
opened right after the meter's first reading has no false gaps, its stop waits
for the poll after it, and its energy is the interpolated integral."""

from __future__ import annotations

from wattd.energy import NS, integrate
from wattd.markers.engine import RunEngine
from wattd.markers.events import RunClosed, RunOpened, SourceAddress
from wattd.markers.protocol import parse_message
from wattd.readings import Reading

OFFSET = 1_700_000_000 * NS
MS = 1_000_000
PERIOD = 1_020 * MS  # a 1 s poll plus the plug's answer time
SENDER = SourceAddress("127.0.0.1", 50000)


def test_one_second_meter_run_right_after_first_reading() -> None:
    engine = RunEngine(["plug"])
    pushed: list[tuple[int, float]] = []

    def push(t_boot: int) -> None:
        power = 20.0 + 10.0 * ((t_boot // PERIOD) % 3)
        engine.push(Reading(meter="plug", t_ns=t_boot + OFFSET, t_boot_ns=t_boot,
                            power_w=power))
        pushed.append((t_boot + OFFSET, power))

    push(PERIOD)
    start_boot = PERIOD + 300 * MS
    out = engine.handle(parse_message(f"start r ts={start_boot + OFFSET} id=a".encode()),
                        SENDER, start_boot + OFFSET, start_boot)
    assert isinstance(out.event, RunOpened)
    for k in range(2, 5):
        push(k * PERIOD)
    stop_boot = start_boot + 3 * NS
    out = engine.handle(parse_message(f"stop r ts={stop_boot + OFFSET} id=b".encode()),
                        SENDER, stop_boot + OFFSET, stop_boot)
    assert out.pending  # no poll after the stop yet: the reply waits for it
    assert engine.take_completions() == []
    push(5 * PERIOD)  # 5.1 s: after the stop at 4.32 s
    (done,) = engine.take_completions()
    assert isinstance(done.event, RunClosed)
    result = done.event.result
    exact = integrate(pushed, start_boot + OFFSET, stop_boot + OFFSET).energy_j
    assert abs(result.energy_j - exact) < 1e-9 * exact
    assert result.gap_s == 0.0, result
    assert result.extrapolated_s == 0.0
