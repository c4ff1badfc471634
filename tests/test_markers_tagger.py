"""Run tagging with hold-back: readings released late enough for a back-dated marker."""

from __future__ import annotations

from wattd.energy import NS
from wattd.markers.engine import EngineSettings, RunEngine
from wattd.markers.events import SourceAddress
from wattd.markers.protocol import parse_message
from wattd.markers.tagger import RunTagger
from wattd.readings import Reading

OFFSET = 1_700_000_000 * NS
MS = 1_000_000
SENDER = SourceAddress("127.0.0.1", 50000)


def reading(t_boot: int, power: float = 10.0) -> Reading:
    return Reading(meter="m", t_ns=t_boot + OFFSET, t_boot_ns=t_boot, power_w=power)


def mark(engine: RunEngine, text: str, recv_boot: int) -> None:
    engine.handle(parse_message(text.encode()), SENDER, recv_boot + OFFSET, recv_boot)


def test_readings_are_held_back_then_tagged_with_a_backdated_start() -> None:
    engine = RunEngine(["m"], EngineSettings(holdback_ns=300 * MS))
    tagger = RunTagger(engine)
    for t in range(1, 11):  # 0.1 .. 1.0 s
        tagger.push(reading(t * 100 * MS))
    assert [r.t_boot_ns for r in tagger.pop_ready(NS)] == [t * 100 * MS for t in range(1, 8)]
    assert tagger.held_readings == 3
    # Sent at 0.8 s, received at 1.0 s: the held readings from 0.8 s on carry the run.
    mark(engine, f"start r lang=py ts={OFFSET + 800 * MS}", NS)
    released = tagger.pop_ready(2 * NS)
    assert [(r.t_boot_ns, r.tags.get("run"), r.tags.get("lang")) for r in released] == [
        (800 * MS, "r", "py"), (900 * MS, "r", "py"), (NS, "r", "py")]
    assert tagger.held_readings == 0


def test_flush_all_releases_everything_tagged() -> None:
    engine = RunEngine(["m"], EngineSettings(holdback_ns=10 * NS))
    tagger = RunTagger(engine)
    mark(engine, "start r", 0)
    tagger.push(reading(100 * MS))
    assert tagger.pop_ready(200 * MS) == []
    (flushed,) = tagger.flush_all()
    assert flushed.tags == {"run": "r"}


def test_default_holdback_is_the_skew_limit_plus_the_observed_period() -> None:
    engine = RunEngine(["m"], EngineSettings(skew_limit_ns=250 * MS))
    tagger = RunTagger(engine)
    for t in range(200):  # 50 ms apart: the period estimate converges to 50 ms
        tagger.push(reading(t * 50 * MS))
    assert abs(tagger.holdback_ns("m") - 300 * MS) < MS


def test_a_reading_that_completes_a_stop_calls_back() -> None:
    engine = RunEngine(["m"])
    calls: list[int] = []
    tagger = RunTagger(engine, on_completions=lambda: calls.append(len(calls)))
    tagger.push(reading(0))
    mark(engine, "start r", 100 * MS)
    tagger.push(reading(200 * MS))
    mark(engine, "stop r", 300 * MS)
    assert calls == []
    tagger.push(reading(400 * MS))  # brackets the stop: the reply can go
    assert calls == [0]
    (done,) = engine.take_completions()
    assert done.event is not None
    assert abs(done.event.result.energy_j - 10.0 * 0.2) < 1e-9
