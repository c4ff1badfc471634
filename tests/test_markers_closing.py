"""Energy completion: a stop is answered once every interval it closed is resolved."""

from __future__ import annotations

from wattd.energy import NS
from wattd.lineprotocol import parse_line
from wattd.markers.closing import StopBook
from wattd.markers.events import SourceAddress
from wattd.markers.intervals import Interval

SENDER = SourceAddress("127.0.0.1", 50000)


def interval(meter: str, power_w: float) -> Interval:
    out = Interval(meter=meter, run="r", phase=None, tags={}, start_rt_ns=0, start_boot_ns=0)
    for t in range(0, 3 * NS, NS // 2):
        out.add(t, power_w, None)
    return out


def counters() -> dict[str, int]:
    return {"runs_closed": 0, "stops_extrapolated": 0}


def test_a_stop_on_two_meters_waits_for_both_and_sums_them() -> None:
    book = StopBook(5 * NS, clock_step=lambda start, stop: stop > start, counters=counters())
    a, b = interval("a", 10.0), interval("b", 30.0)
    book.close(a, 2 * NS, 2 * NS, {"outcome": "ok"})
    book.close(b, 4 * NS, 4 * NS, {})  # b's stop is past its last reading
    book.wait("r", None, "7", SENDER, [a, b], 4 * NS)
    book.resolve(None, None)
    assert not book.has_completions  # b waits for the reading after its stop
    b.add(5 * NS, 30.0, None)
    book.resolve("b", None)
    (done,) = book.take()
    assert done.sender == SENDER
    assert done.event is not None
    result = done.event.result
    assert (done.event.name, done.event.msg_id) == ("r", "7")
    assert result.energy_j == 10.0 * 2 + 30.0 * 4
    assert result.per_meter_j == (("a", 20.0), ("b", 120.0))
    assert result.clock_step
    lines = [parse_line(line) for line in done.lines]
    assert [p.tags["meter"] for p in lines] == ["a", "b"]
    assert lines[0].tags["outcome"] == "ok"


def test_an_expired_wait_holds_the_last_power_and_an_orphan_gives_its_line_only() -> None:
    book = StopBook(NS, clock_step=None, counters=counters())
    run, phase = interval("a", 10.0), interval("a", 10.0)
    book.close(phase, 4 * NS, 4 * NS, {})
    book.orphan(phase, 4 * NS)
    book.close(run, 4 * NS, 4 * NS, {})
    book.wait("r", None, None, SENDER, [run], 4 * NS)
    assert book.waiting
    book.resolve(None, 4 * NS + NS // 2)
    assert book.take() == []
    book.resolve(None, 5 * NS)
    stop, orphan = book.take()  # waiting stops complete before orphans
    assert orphan.event is None
    assert len(orphan.lines) == 1
    assert stop.event is not None
    assert stop.event.result.extrapolated_s == 1.5  # power held from the last reading at 2.5 s
    assert book.counters["stops_extrapolated"] == 2
    assert not book.waiting


def test_an_aborted_interval_waits_for_nothing() -> None:
    book = StopBook(NS, clock_step=None, counters=counters())
    run = interval("a", 10.0)
    book.close(run, 9 * NS, 9 * NS, {})
    point = parse_line(book.aborted_line(run))
    assert point.fields["aborted"] is True
    assert book.closing_on("a") == []
