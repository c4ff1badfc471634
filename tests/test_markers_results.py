"""The `result` (SPEC 9.2) and `sample` (SPEC 9.3) verbs: wire validation,
the engine's run lookup and journal lines, and the service over real UDP
(auth, de-duplication; samples are never answered)."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_markers_engine import OFFSET, Feed, handle, reply_of
from tests.test_markers_server import SECRET, Harness, harness, mark, raw  # noqa: F401
from wattd.energy import NS
from wattd.errors import MarkerInputError
from wattd.lineprotocol import parse_line
from wattd.markers import wire
from wattd.markers.engine import EngineSettings, RunEngine
from wattd.markers.events import Unanswered
from wattd.markers.protocol import parse_message, parse_reply, send

MS = 1_000_000


def test_result_parse_and_format_round_trip() -> None:
    data = wire.format_message("result", "r-1", tags={"requests": "4000", "rps": "1234.5",
                                                      "latency_ms_q99": "1.5e1", "tool": "ab"},
                               ts_ns=5, msg_id="x")
    msg = parse_message(data)
    assert msg.verb == "result"
    assert msg.name == "r-1"
    assert msg.tags == {"requests": "4000", "rps": "1234.5", "latency_ms_q99": "1.5e1",
                        "tool": "ab"}
    assert parse_message(b"result r duration_s=1 failed=-0\n").tags["duration_s"] == "1"


@pytest.mark.parametrize(("text", "why"), [
    ("result r requests=abc", "not a decimal"),
    ("result r requests=inf", "not a decimal"),
    ("result r requests=nan", "not a decimal"),
    ("result r requests=1_000", "not a decimal"),
    ("result r requests=1e999", "not finite"),
    ("result r Requests=1", "bad result key"),
    ("result r _x=1", "bad result key"),
    ("result r run=1", "reserved or tag name"),
    ("result r time=1", "reserved or tag name"),
    ("result r run_start_ns=1", "reserved or tag name"),
    ("result r target=1", "reserved or tag name"),
    ("sample h tool=ab", "reserved or tag name"),
    ("result r " + " ".join(f"k{i}=1" for i in range(33)), "at most 32"),
    ("result", "needs a name"),
])
def test_result_refusals(text: str, why: str) -> None:
    with pytest.raises(MarkerInputError, match=why) as info:
        parse_message(text.encode())
    assert info.value.reason == "syntax"


def test_format_refuses_what_parse_refuses() -> None:
    with pytest.raises(MarkerInputError):
        wire.format_message("result", "r", tags={"rps": "fast"})
    with pytest.raises(MarkerInputError):
        wire.format_message("result", "r", tags={f"k{i}": "1" for i in range(33)})
    assert parse_message(wire.format_message(
        "result", "r", tags={f"k{i}": "1" for i in range(32)})).tags["k31"] == "1"


def _lines(outcome: object) -> list[object]:
    return [parse_line(line) for line in outcome.lines]  # type: ignore[attr-defined]


def test_engine_result_to_open_and_recently_closed_run() -> None:
    engine = RunEngine(["m"], EngineSettings(result_window_ns=600 * NS))
    feed = Feed(engine)
    feed.until(2 * NS, 10.0)
    start_rt = OFFSET + 2 * NS
    assert reply_of(handle(engine, f"start r lang=rust ts={start_rt}", 2 * NS)).ok
    feed.until(3 * NS, 10.0)
    out = handle(engine, "result r requests=100 tool=ab latency_ms_q50=2 latency_ms_q100=9 id=a",
                 3 * NS)
    reply = reply_of(out)
    assert reply.ok
    assert (reply.verb, reply.name, reply.msg_id) == ("result", "r", "a")
    result, q50, q100 = _lines(out)
    assert result.measurement == "wattd_result"
    assert result.tags == {"run": "r", "source": "127.0.0.1", "tool": "ab", "lang": "rust"}
    assert result.fields == {"requests": 100.0, "run_start_ns": start_rt}
    assert isinstance(result.fields["requests"], float)
    assert result.t_ns == start_rt
    assert (q50.measurement, q50.tags, q50.fields) == (
        "wattd_latency", {"run": "r", "q": "50", "lang": "rust"},
        {"ms": 2.0, "run_start_ns": start_rt})
    assert q100.tags["q"] == "100"
    handle(engine, "stop r", 3 * NS)
    feed.until(4 * NS, 10.0)
    # after the stop: the run closed less than result_window_s ago
    out = handle(engine, "result r failed=0", 4 * NS)
    assert reply_of(out).ok
    assert _lines(out)[0].fields == {"failed": 0.0, "run_start_ns": start_rt}
    late = handle(engine, "result r failed=0", 3 * NS + 600 * NS)
    assert reply_of(late).code == "unknown"
    assert late.lines == []
    nobody = handle(engine, "result other failed=0", 4 * NS)
    assert reply_of(nobody).code == "unknown"
    assert reply_of(handle(engine, "result r latency_ms_q101=1", 4 * NS)).code == \
        "syntax"


def test_engine_result_after_abort_and_user_tag_named_like_a_field() -> None:
    engine = RunEngine(["m"])
    feed = Feed(engine)
    feed.until(2 * NS, 10.0)
    handle(engine, "start r requests=500", 2 * NS)
    feed.until(3 * NS, 10.0)
    handle(engine, "abort r", 3 * NS)
    out = handle(engine, "result r requests=499", 3 * NS)
    (point,) = _lines(out)
    assert "requests" not in point.tags  # the field wins over the user tag of that name
    assert point.fields["requests"] == 499.0


def test_engine_sample_tagged_with_the_run_open_at_its_time() -> None:
    engine = RunEngine(["m"])
    feed = Feed(engine)
    feed.until(2 * NS, 10.0)
    t0 = OFFSET + 2 * NS
    before = handle(engine, f"sample pi cpu_s=1.5 procs=3 target=carddav ts={t0 - 50 * MS}",
                    2 * NS)
    (point,) = _lines(before)
    assert point.measurement == "wattd_cpu"
    assert point.tags == {"host": "pi", "target": "carddav"}
    assert point.fields == {"cpu_s": 1.5, "procs": 3}
    assert isinstance(point.fields["procs"], int)
    assert point.t_ns == t0 - 50 * MS
    assert isinstance(before.event, Unanswered)  # never answered
    assert before.event is not None
    assert send(before.event) == b""
    handle(engine, f"start r lang=go ts={t0}", 2 * NS)
    feed.until(3 * NS, 10.0)
    during = _lines(handle(engine, f"sample pi cpu_s=2.5 ts={t0 + 500 * MS}", 3 * NS))[0]
    assert during.tags == {"host": "pi", "run": "r", "lang": "go"}
    # a late sample (sent before the start, received after it) is still untagged
    late = _lines(handle(engine, f"sample pi cpu_s=1.6 ts={t0 - 10 * MS}", 2 * NS + 200 * MS))
    assert "run" not in late[0].tags
    # a sample without ts is refused (counted by the service, never answered)
    refused = handle(engine, "sample pi cpu_s=3", 3 * NS)
    assert reply_of(refused).code == "syntax"
    assert refused.lines == []


def test_engine_sample_with_two_runs_needs_meter() -> None:
    engine = RunEngine(["a", "b"])
    fa, fb = Feed(engine, "a"), Feed(engine, "b")
    fa.until(2 * NS, 1.0)
    fb.until(2 * NS, 1.0)
    t0 = OFFSET + 2 * NS
    handle(engine, f"start ra meter=a ts={t0}", 2 * NS)
    handle(engine, f"start rb meter=b ts={t0}", 2 * NS)
    fa.until(3 * NS, 1.0)
    fb.until(3 * NS, 1.0)
    t = t0 + 500 * MS
    assert "run" not in _lines(handle(engine, f"sample h cpu_s=1 ts={t}", 3 * NS))[0].tags
    assert _lines(handle(engine, f"sample h cpu_s=1 meter=b ts={t}", 3 * NS))[0].tags["run"] == "rb"
    assert reply_of(handle(engine, f"sample h cpu_s=1 meter=zz ts={t}", 3 * NS)).code \
        == "unknown"


async def test_result_over_udp_deduplicated(harness: Harness) -> None:  # noqa: F811
    assert (await mark(harness, "start", "web")).ok
    data = wire.format_message("result", "web", tags={"requests": "10", "rps": "5"},
                               msg_id="dup1")
    first = await raw(harness, data)
    again = await raw(harness, data)
    assert first == again
    assert first is not None
    assert parse_reply(first).ok
    assert len(harness.journal.points("wattd_result")) == 1
    assert harness.service.counters["duplicates"] == 1
    bad = await raw(harness, b"result web requests=lots")
    assert bad is not None
    assert bad.startswith(b"error syntax")
    assert (await mark(harness, "stop", "web")).ok


async def test_sample_never_answered(harness: Harness) -> None:  # noqa: F811
    before = harness.service.counters["syntax"]
    assert await raw(harness, b"sample pi cpu_s=1", timeout_s=0.5) is None  # no ts
    assert harness.service.counters["syntax"] == before + 1
    ts = wire.format_message("sample", "pi", tags={"cpu_s": "1.25", "target": "host"},
                             ts_ns=time.time_ns())
    assert await raw(harness, ts, timeout_s=0.5) is None
    for _ in range(50):
        if harness.journal.points("wattd_cpu"):
            break
        await asyncio.sleep(0.05)
    (point,) = harness.journal.points("wattd_cpu")
    assert point.fields == {"cpu_s": 1.25}
    assert point.tags == {"host": "pi", "target": "host"}


@pytest.mark.parametrize("harness", [{"secret": True}], indirect=True)
async def test_sample_and_result_need_auth(harness: Harness) -> None:  # noqa: F811
    unsigned = wire.format_message("sample", "pi", tags={"cpu_s": "1"}, ts_ns=time.time_ns(),
                                   msg_id="s1")
    assert await raw(harness, unsigned, timeout_s=0.5) is None
    assert harness.service.counters["auth"] == 1
    signed = wire.format_message("sample", "pi", tags={"cpu_s": "2"}, ts_ns=time.time_ns(),
                                 msg_id="s2", secret=SECRET)
    assert await raw(harness, signed, timeout_s=0.5) is None
    for _ in range(50):
        if harness.journal.points("wattd_cpu"):
            break
        await asyncio.sleep(0.05)
    assert [p.fields["cpu_s"] for p in harness.journal.points("wattd_cpu")] == [2.0]
    reply = await raw(harness, wire.format_message("result", "x", tags={"rps": "1"}))
    assert reply is not None
    assert reply.startswith(b"error auth")
    assert (await mark(harness, "start", "web", secret=SECRET)).ok
    ok = await mark(harness, "result", "web", secret=SECRET, tags={"rps": "3"})
    assert ok.ok, ok
    assert harness.journal.points("wattd_result")[0].fields["rps"] == 3.0


_FIELD_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_=.-+eE %\x00é", max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["result r ", "sample h "]), _FIELD_TEXT)
def test_random_result_and_sample_text(prefix: str, rest: str) -> None:
    """Random field text: a message whose every value is a finite number, or a syntax error."""
    try:
        msg = parse_message((prefix + rest).encode())
    except MarkerInputError as exc:
        reason = exc.reason
        assert reason == "syntax"
        return
    assert len(msg.tags) <= wire.MAX_FIELD_KEYS
    for key, value in msg.tags.items():
        if key not in ("tool", "target"):
            assert wire.check_field_number(key, value) == float(value)
