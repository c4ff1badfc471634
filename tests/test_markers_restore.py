"""Runs found open in the journal after a restart, with the timeline's rules."""

from __future__ import annotations

import os
from pathlib import Path

from tests.report_journal import JournalBuilder, ts
from wattd.markers.restore import scan_runs


def test_open_runs_and_phases_at_the_end_of_the_journal(tmp_path: Path) -> None:
    b = JournalBuilder().readings("a", 0, 3, 1, power=1.0)
    b.marker("start", "done", 1).marker("stop", "done", 2)
    b.marker("start", "stop-without-start", 2.5, meter="a")  # a run on meter a only...
    b.marker("stop", "stop-without-start", 2.6, meter="a")  # ...closed again
    b.marker("stop", "never-started", 2.7)
    b.marker("start", "open", 3, text="lang=rust note=two%20words")
    b.marker("start", "open", 4, phase="warm", text="n=1")
    b.marker("start", "open", 5, phase="load", text="n=2")  # closes warm
    b.marker("start", "lost", 6, meter="c")  # an unconfigured meter: not reopened
    b.write(tmp_path)
    found = scan_runs(str(tmp_path), ["a", "b"], 86400.0, ts(10) / 1e9)
    runs = found.open
    assert found.start is not None
    assert [(r.meter, r.run, r.start_ns, r.tags) for r in runs] == [
        ("a", "open", ts(3), {"lang": "rust", "note": "two words"}),
        ("b", "open", ts(3), {"lang": "rust", "note": "two words"})]
    assert runs[0].phase == ("load", ts(5), {"lang": "rust", "note": "two words", "n": "2"})


def test_a_later_start_on_a_busy_meter_supersedes_the_lost_run(tmp_path: Path) -> None:
    b = JournalBuilder()
    b.marker("start", "lost-in-a-restart", 1, meter="a")
    b.marker("start", "after", 2, meter="a")
    b.write(tmp_path)
    runs = scan_runs(str(tmp_path), ["a"], 86400.0, ts(10) / 1e9).open
    assert [(r.run, r.start_ns) for r in runs] == [("after", ts(2))]


def test_segments_older_than_max_run_are_not_read(tmp_path: Path) -> None:
    old = JournalBuilder().marker("start", "ancient", 1).write(tmp_path, 1)
    JournalBuilder().marker("event", "x", 2).write(tmp_path, 2)
    os.utime(old, (1_000_000.0, 1_000_000.0))
    found = scan_runs(str(tmp_path), ["a"], 60.0, 1_000_000.0 + 3600)
    assert found.open == []
    assert found.start is not None
    assert found.start.segment == 2


def test_a_reopened_run_that_never_gets_a_reading_has_no_energy(tmp_path: Path) -> None:
    from wattd.energy import NS
    from wattd.lineprotocol import parse_line
    from wattd.markers.engine import RunEngine
    from wattd.markers.events import SourceAddress
    from wattd.markers.protocol import parse_message, parse_reply, send
    from wattd.markers.restore import reopen_runs

    b = JournalBuilder().readings("live", 0, 3, 0.5, power=8.0)
    b.marker("start", "measured", 1, meter="live")
    b.marker("start", "silent", 1, meter="dead")  # the dead meter never delivered
    b.write(tmp_path)
    engine = RunEngine(["live", "dead"])
    now_rt, now_boot = ts(4), 4 * NS  # the daemon is back at 4 s, neither meter reads
    reopened = reopen_runs(engine, str(tmp_path), ["live", "dead"], 86400.0, now_rt, now_boot)
    assert sorted(r.run for r in reopened) == ["measured", "silent"]
    sender = SourceAddress("127.0.0.1", 50000)
    for name in ("measured", "silent"):
        engine.handle(parse_message(f"stop {name}".encode()), sender, ts(5), 5 * NS)
    engine.poll(ts(20), 20 * NS)  # the stop wait expires
    comps = engine.take_completions()
    replies = {r.name: r for r in (parse_reply(send(c.event)) for c in comps if c.event)}
    assert replies["silent"].no_readings == ["dead"]
    assert "energy_j" not in replies["silent"].fields
    # The other run keeps the readings it had before the restart (held to the stop).
    assert replies["measured"].number("energy_j") > 0
    assert "no_readings" not in replies["measured"].fields
    (silent,) = [p for c in comps for p in map(parse_line, c.lines)
                 if p.tags["run"] == "silent"]
    assert silent.fields["no_readings"] is True
    assert "energy_j" not in silent.fields


def test_a_result_after_a_restart_finds_its_recently_closed_run(tmp_path: Path) -> None:
    """SPEC 9.2: a result belongs to the most recent run of its name closed less than
    markers.result_window_s ago, also when the daemon restarted in between."""
    from wattd.energy import NS
    from wattd.lineprotocol import parse_line
    from wattd.markers.engine import EngineSettings, RunEngine
    from wattd.markers.events import SourceAddress
    from wattd.markers.protocol import parse_message, parse_reply, send
    from wattd.markers.restore import reopen_runs

    b = JournalBuilder().readings("a", 0, 700, 50, power=3.0)
    b.marker("start", "old", 1, text="lang=c").marker("stop", "old", 2)  # long ago
    b.marker("start", "twice", 10).marker("stop", "twice", 20)
    b.marker("start", "twice", 650, text="lang=rust").marker("stop", "twice", 660)
    b.marker("start", "aborted", 670).marker("abort", "aborted", 680)
    b.marker("start", "ph", 681).marker("start", "ph", 682, phase="warm")
    b.marker("stop", "ph", 683, phase="warm")  # a phase closes; its run stays open
    b.write(tmp_path)
    now_s = 700
    found = scan_runs(str(tmp_path), ["a"], 86400.0, ts(now_s) / 1e9, 600.0)
    assert [(ref.run, ref.start_rt_ns, ref.tags, stop) for ref, stop in found.closed] == [
        ("twice", ts(650), {"lang": "rust"}, ts(660)), ("aborted", ts(670), {}, ts(680))]
    assert [r.run for r in found.open] == ["ph"]

    engine = RunEngine(["a"], EngineSettings(result_window_ns=600 * NS))
    now_boot = 5 * NS  # the daemon restarted 5 s ago
    reopen_runs(engine, str(tmp_path), ["a"], 86400.0, ts(now_s), now_boot)
    sender = SourceAddress("127.0.0.1", 50000)

    def result(name: str, boot_ns: int) -> tuple[str | None, list[str]]:
        msg = parse_message(f"result {name} requests=7".encode())
        out = engine.handle(msg, sender, ts(now_s) + boot_ns - now_boot, boot_ns)
        reply = parse_reply(send(out.event))  # type: ignore[arg-type]
        return (None if reply.ok else reply.code), list(out.lines)

    code, lines = result("twice", now_boot)
    assert code is None
    (point,) = map(parse_line, lines)
    assert (point.measurement, point.t_ns, point.tags["lang"]) == (
        "wattd_result", ts(650), "rust")
    assert point.fields == {"requests": 7.0, "run_start_ns": ts(650)}
    assert result("aborted", now_boot)[0] is None
    assert result("old", now_boot) == ("unknown", [])  # closed 698 s before: outside
    # 600 s after its stop the run is forgotten, as without a restart
    assert result("twice", now_boot + (660 + 600 - now_s) * NS)[0] == "unknown"
