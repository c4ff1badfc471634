"""The run engine, pure: readings and messages with explicit times."""

from __future__ import annotations

from wattd.energy import NS, integrate
from wattd.lineprotocol import parse_line
from wattd.markers.engine import EngineSettings, Outcome, RunEngine
from wattd.markers.events import SourceAddress
from wattd.markers.protocol import parse_message, parse_reply, send
from wattd.markers.tagger import RunTagger
from wattd.markers.wire import Reply
from wattd.readings import Reading

OFFSET = 1_700_000_000 * NS  # realtime = boottime + OFFSET
MS = 1_000_000
SENDER = SourceAddress("127.0.0.1", 50000)


def reading(meter: str, t_boot: int, power: float, counter: float | None = None) -> Reading:
    return Reading(meter=meter, t_ns=t_boot + OFFSET, t_boot_ns=t_boot, power_w=power,
                   energy_j=counter)


class Feed:
    """Readings every ``period`` from a power profile, with a hardware counter."""

    def __init__(self, engine: RunEngine, meter: str = "m", period: int = 100 * MS) -> None:
        self.engine = engine
        self.tagger = RunTagger(engine)
        self.meter = meter
        self.period = period
        self.t = 0
        self.counter = 0.0
        self.pushed: list[tuple[int, float]] = []
        self.out: list[Reading] = []

    def until(self, t_end: int, power: float | object) -> None:
        while self.t < t_end:
            self.t += self.period
            p = power(self.t) if callable(power) else float(power)  # type: ignore[arg-type]
            if self.pushed:
                self.counter += (self.pushed[-1][1] + p) / 2 * self.period / NS
            self.tagger.push(reading(self.meter, self.t, p, self.counter))
            self.pushed.append((self.t, p))
            self.out.extend(self.tagger.pop_ready(self.t))


def msg(text: str) -> object:
    return parse_message(text.encode())


def handle(engine: RunEngine, text: str, recv_boot: int) -> Outcome:
    return engine.handle(parse_message(text.encode()), SENDER, recv_boot + OFFSET, recv_boot)


def reply_of(out: object) -> Reply:
    """The reply datagram the UDP edge sends for an outcome or completion, parsed."""
    return parse_reply(send(out.event))  # type: ignore[attr-defined]


def test_constant_power_run_with_backdated_ts_and_tags() -> None:
    engine = RunEngine(["m"])
    feed = Feed(engine)
    feed.until(2 * NS, 100.0)
    start_rt = OFFSET + 2 * NS - 150 * MS  # sent 150 ms before it is received
    out = handle(engine, f"start r lang=rust ts={start_rt} id=a", 2 * NS)
    reply = reply_of(out)
    assert reply.ok
    assert reply.msg_id == "a"
    assert parse_line(out.lines[0]).measurement == "wattd_marker"
    feed.until(5 * NS, 100.0)
    stop_rt = OFFSET + 5 * NS - 30 * MS
    out = handle(engine, f"stop r ts={stop_rt} id=b", 5 * NS)
    assert out.pending  # the reading at 5.0 s (after the stop) was already there
    (done,) = engine.take_completions()
    reply = reply_of(done)
    assert reply.ok
    assert reply.msg_id == "b"
    expected = (stop_rt - start_rt) / NS * 100.0
    assert abs(reply.number("energy_j") - expected) < 1e-6 * expected
    assert abs(reply.number("counter_energy_j") - expected) < 1e-3 * expected
    run_point = parse_line(done.lines[0])
    assert run_point.measurement == "wattd_run"
    assert run_point.tags == {"run": "r", "meter": "m", "lang": "rust"}
    assert run_point.fields["start_ns"] == start_rt
    assert run_point.t_ns == stop_rt
    # Readings in [start, stop) are tagged, even the one decoded before the start arrived.
    feed.until(7 * NS, 100.0)
    feed.out.extend(feed.tagger.flush_all())
    for r in feed.out:
        inside = start_rt <= r.t_ns < stop_rt
        assert (r.tags.get("run") == "r") == inside, r
        assert (r.tags.get("lang") == "rust") == inside


def test_step_profile_matches_exact_integral() -> None:
    engine = RunEngine(["m"])
    feed = Feed(engine, period=NS)

    def power(t: int) -> float:
        return 250.0 if t < 6 * NS else 50.0

    feed.until(4 * NS, power)
    start_rt = OFFSET + 4 * NS - 240 * MS  # before the 4.0 s reading, which is already in
    handle(engine, f"start s ts={start_rt}", 4 * NS)
    feed.until(8 * NS, power)
    stop_rt = OFFSET + 8 * NS + 130 * MS
    out = handle(engine, f"stop s ts={stop_rt} id=z", 8 * NS + 300 * MS)
    assert out.pending
    assert engine.take_completions() == []  # waits for the reading after the stop
    feed.until(9 * NS, power)
    (done,) = engine.take_completions()
    got = reply_of(done).number("energy_j")
    exact = integrate(feed.pushed, start_rt - OFFSET, stop_rt - OFFSET).energy_j
    assert abs(got - exact) < 1e-9 * exact
    naive = sum(p for t, p in feed.pushed if start_rt - OFFSET <= t < stop_rt - OFFSET)
    assert abs(naive - exact) / exact >= 0.05


def test_phases_busy_unknown_abort_event() -> None:
    engine = RunEngine(["a", "b"])
    fa, fb = Feed(engine, "a"), Feed(engine, "b")
    for f in (fa, fb):
        f.until(NS, 10.0)
    assert reply_of(handle(engine, "start r k=v", NS)).ok
    assert reply_of(handle(engine, "start other", NS)).code == "busy"
    assert reply_of(handle(engine, "start other meter=b", NS)).code == "busy"
    assert reply_of(handle(engine, "start other meter=zz", NS)).code == "unknown"
    assert reply_of(handle(engine, "stop nope", NS)).code == "unknown"
    assert reply_of(handle(engine, "stop r phase=p1", NS)).code == "unknown"
    assert reply_of(handle(engine, "start r phase=p1", NS)).ok
    for f in (fa, fb):
        f.until(2 * NS, 10.0)
    assert reply_of(handle(engine, "start r phase=p2", 2 * NS)).ok
    assert reply_of(handle(engine, "event r note=x", 2 * NS)).ok
    for f in (fa, fb):
        f.until(4 * NS, 10.0)
    # p1 closed when p2 opened: its wattd_run points came out.
    lines = [parse_line(line) for c in engine.take_completions() for line in c.lines]
    assert sorted(p.tags["meter"] for p in lines if p.tags.get("phase") == "p1") == ["a", "b"]
    assert all(abs(p.fields["energy_j"] - 10.0) < 1e-6 for p in lines)
    out = handle(engine, "stop r", 4 * NS)
    assert out.pending
    for f in (fa, fb):
        f.until(5 * NS, 10.0)
    comps = engine.take_completions()
    replies = [reply_of(c) for c in comps if c.event]
    (reply,) = replies
    assert abs(reply.number("energy_j") - 60.0) < 1e-6
    assert abs(reply.number("energy_j.a") - 30.0) < 1e-6
    points = [parse_line(line) for c in comps for line in c.lines]
    assert {(p.tags["meter"], p.tags.get("phase")) for p in points} == {
        ("a", None), ("b", None), ("a", "p2"), ("b", "p2")}
    # Abort: point with aborted=true, meter free again.
    assert reply_of(handle(engine, "start q meter=a", 5 * NS)).ok
    assert reply_of(handle(engine, "start w meter=b", 5 * NS)).ok
    out = handle(engine, "abort q", 6 * NS)
    assert reply_of(out).ok
    assert parse_line(out.lines[1]).fields["aborted"] is True
    assert reply_of(handle(engine, "start q meter=a", 6 * NS)).ok


def test_stop_without_following_reading_extrapolates_after_wait() -> None:
    engine = RunEngine(["m"], EngineSettings(stop_wait_ns=2 * NS))
    feed = Feed(engine)
    feed.until(NS, 40.0)
    handle(engine, "start r", NS)
    feed.until(3 * NS, 40.0)
    handle(engine, "stop r id=1", 3 * NS + 50 * MS)
    engine.poll(OFFSET + 4 * NS, 4 * NS)
    assert engine.take_completions() == []
    engine.poll(OFFSET + 5 * NS + 60 * MS, 5 * NS + 60 * MS)
    (done,) = engine.take_completions()
    reply = reply_of(done)
    assert abs(reply.number("energy_j") - 82.0) < 1e-6
    assert abs(reply.number("extrapolated_s") - 0.05) < 1e-6


def test_max_run_auto_abort() -> None:
    engine = RunEngine(["m"], EngineSettings(max_run_ns=10 * NS))
    feed = Feed(engine)
    feed.until(NS, 1.0)
    handle(engine, "start r", NS)
    engine.poll(OFFSET + 5 * NS, 5 * NS)
    assert engine.open_runs()
    engine.poll(OFFSET + 12 * NS, 12 * NS)
    assert not engine.open_runs()
    (done,) = engine.take_completions()
    marker, run = (parse_line(line) for line in done.lines)
    assert (marker.tags["verb"], marker.tags["source"]) == ("abort", "wattd")
    assert run.fields["aborted"] is True


def test_reopen_counts_gap() -> None:
    engine = RunEngine(["m"])
    start_rt = OFFSET + NS
    engine.reopen("m", "r", {"k": "v"}, start_rt, OFFSET)
    for i in range(10):  # journal readings before the crash: 1.0 .. 1.9 s
        engine.seed("m", NS + i * 100 * MS, 20.0, None)
    feed = Feed(engine)
    feed.t = 20 * NS  # daemon back 18 s later
    feed.until(22 * NS, 20.0)
    handle(engine, "stop r", 22 * NS)
    feed.until(23 * NS, 20.0)
    (done,) = engine.take_completions()
    reply = reply_of(done)
    assert abs(reply.number("energy_j") - 21 * 20.0) < 1e-6
    assert reply.number("gap_s") > 18.0
    assert parse_line(done.lines[0]).tags["k"] == "v"


def _closed(engine: RunEngine, stop_text: str, stop_boot: int) -> tuple[Reply, list[object]]:
    """Stop, let the stop wait expire, and return the reply and wattd_run points."""
    handle(engine, stop_text, stop_boot)
    engine.poll(OFFSET + stop_boot + 10 * NS, stop_boot + 10 * NS)
    comps = engine.take_completions()
    (reply,) = [reply_of(c) for c in comps if c.event]
    return reply, [parse_line(line) for c in comps for line in c.lines]


def test_a_run_without_a_reading_has_no_energy_never_zero() -> None:
    engine = RunEngine(["m1"], EngineSettings(stop_wait_ns=NS))
    handle(engine, "start silent", NS)  # the meter's port delivers nothing
    reply, (point,) = _closed(engine, "stop silent", 3 * NS + 400 * MS)
    assert reply.ok
    for key in ("energy_j", "mean_w", "max_w", "extrapolated_s", "counter_energy_j"):
        assert key not in reply.fields, reply
    assert reply.fields["no_readings"] == "m1"
    assert reply.no_readings == ["m1"]
    assert reply.number("samples") == 0
    assert reply.number("duration_s") == 2.4
    assert reply.number("gap_s") == 2.4  # readings were missing the whole run
    assert "energy_j" not in point.fields
    assert "mean_w" not in point.fields
    assert point.fields["no_readings"] is True
    assert point.fields["samples"] == 0
    assert point.fields["duration_s"] == 2.4
    assert engine.status()["stops_no_readings"] == 1


def test_one_reading_before_the_start_held_over_the_run_is_no_measurement() -> None:
    engine = RunEngine(["m1"], EngineSettings(stop_wait_ns=NS))
    feed = Feed(engine, "m1")
    feed.until(NS, 40.0)  # the last reading the meter delivered, then silence
    handle(engine, "start held", 2 * NS)
    reply, (point,) = _closed(engine, "stop held", 4 * NS)
    assert "energy_j" not in reply.fields, reply
    assert reply.no_readings == ["m1"]
    assert point.fields["no_readings"] is True


def test_readings_on_both_sides_but_none_inside_interpolate_as_before() -> None:
    engine = RunEngine(["m1"])
    feed = Feed(engine, "m1", period=2 * NS)
    feed.until(4 * NS, 30.0)  # readings at 2 s and 4 s
    handle(engine, "start short", 4 * NS + 500 * MS)
    handle(engine, "stop short", 5 * NS + 500 * MS)
    feed.until(6 * NS, 30.0)  # the 6 s reading brackets the stop
    (done,) = engine.take_completions()
    reply = reply_of(done)
    assert abs(reply.number("energy_j") - 30.0) < 1e-9  # interpolated between 4 s and 6 s
    assert "no_readings" not in reply.fields
    assert reply.number("samples") == 0


def test_two_meters_one_silent_the_other_keeps_its_energy() -> None:
    engine = RunEngine(["a", "b"], EngineSettings(stop_wait_ns=NS))
    feed = Feed(engine, "a")
    feed.until(NS, 20.0)
    handle(engine, "start pair", NS)
    feed.until(3 * NS, 20.0)
    handle(engine, "stop pair", 3 * NS)
    feed.until(3 * NS + 200 * MS, 20.0)
    engine.poll(OFFSET + 5 * NS, 5 * NS)
    comps = engine.take_completions()
    (reply,) = [reply_of(c) for c in comps if c.event]
    assert abs(reply.number("energy_j.a") - 40.0) < 1e-6
    assert "energy_j.b" not in reply.fields
    assert reply.no_readings == ["b"]
    # The total would miss b: it was not measured either.
    assert "energy_j" not in reply.fields
    assert "mean_w" not in reply.fields
    points = {p.tags["meter"]: p for c in comps for p in map(parse_line, c.lines)}
    assert abs(points["a"].fields["energy_j"] - 40.0) < 1e-6
    assert "no_readings" not in points["a"].fields
    assert points["b"].fields["no_readings"] is True
    assert "energy_j" not in points["b"].fields


def test_frames_without_a_power_refresh_during_the_run_are_delivery() -> None:
    """A GB202 at a few watts sends a frame every 100 ms but refreshes power
    once per energy pulse: frames came, so the power of the next refresh held
    over the run is its energy (extrapolated_s), as before; no no_readings."""
    engine = RunEngine(["m1"], EngineSettings(stop_wait_ns=3 * NS))
    for i in range(1, 12):  # frames at 0.1 .. 1.1 s, power unknown yet
        engine.push(Reading(meter="m1", t_ns=i * 100 * MS + OFFSET, t_boot_ns=i * 100 * MS,
                            power_w=None))
    handle(engine, "start low", 300 * MS)
    handle(engine, "stop low", 700 * MS)
    engine.push(reading("m1", 1200 * MS, 4.0))  # the first refresh
    (done,) = engine.take_completions()
    reply = reply_of(done)
    assert "no_readings" not in reply.fields
    assert abs(reply.number("energy_j") - 1.6) < 1e-9
    assert abs(reply.number("extrapolated_s") - 0.4) < 1e-9
