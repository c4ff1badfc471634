"""Runs from the journal's markers: the report and the daemon agree.

A run engine (the daemon's) is driven with readings and markers; everything
it would journal goes to a real segment in the order the daemon writes it
(markers at once, readings after the hold-back). The report scan of that
journal must find the same runs, on the same meters, with the same joules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from wattd.energy import NS
from wattd.lineprotocol import parse_line
from wattd.markers.engine import RunEngine
from wattd.markers.events import SourceAddress
from wattd.markers.protocol import parse_message
from wattd.markers.tagger import RunTagger
from wattd.readings import Reading
from wattd.report.scan import scan_journal

OFFSET = 1_700_000_000 * NS
MS = 1_000_000
SENDER = SourceAddress("127.0.0.1", 50000)


class Daemon:
    """The engine and tagger, writing what the daemon would journal."""

    def __init__(self, meters: list[str]) -> None:
        self.engine = RunEngine(meters)
        self.tagger = RunTagger(self.engine)
        self.lines: list[str] = []
        self.t_boot = 0

    def step(self, until_boot: int) -> None:
        while self.t_boot < until_boot:
            self.t_boot += 100 * MS
            for i, meter in enumerate(self.engine.meters):
                power = 50.0 + 20.0 * math.sin(self.t_boot / NS + i) + i
                self.tagger.push(Reading(meter, self.t_boot + OFFSET + i * MS,
                                         self.t_boot + i * MS, power))
            self.lines += [r.to_line() for r in self.tagger.pop_ready(self.t_boot)]
            self._completions()

    def mark(self, text: str, backdate_ms: int = 0) -> None:
        recv_rt = self.t_boot + OFFSET + 30 * MS
        ts = f" ts={recv_rt - backdate_ms * MS}" if backdate_ms else ""
        out = self.engine.handle(parse_message(f"{text}{ts}".encode()), SENDER, recv_rt,
                                 self.t_boot + 30 * MS)
        assert out.event is None or type(out.event).__name__ != "Refused", out.event
        self.lines += out.lines
        self._completions()

    def _completions(self) -> None:
        for done in self.engine.take_completions():
            self.lines += done.lines

    def finish(self, directory: Path) -> None:
        self.step(self.t_boot + 10 * NS)
        self.lines += [r.to_line() for r in self.tagger.flush_all()]
        directory.mkdir()
        (directory / "00000001.lp").write_text("".join(line + "\n" for line in self.lines))


def test_report_finds_the_daemons_runs_with_the_daemons_joules(tmp_path: Path) -> None:
    daemon = Daemon(["a", "b"])
    daemon.step(2 * NS)
    daemon.mark("start all lang=rust", backdate_ms=120)
    daemon.step(3 * NS)
    daemon.mark("start all phase=warm")
    daemon.step(4 * NS)
    daemon.mark("start all phase=load n=5", backdate_ms=40)  # closes warm
    daemon.step(7 * NS)
    daemon.mark("stop all")  # closes load
    daemon.step(8 * NS)
    daemon.mark("start only-b meter=b")
    daemon.mark("start only-b phase=p")  # the run's meters only: b
    daemon.step(9 * NS)
    daemon.mark("abort only-b phase=p")
    daemon.step(11 * NS)
    daemon.mark("stop only-b", backdate_ms=200)
    daemon.finish(tmp_path / "journal")

    journaled = {}
    for point in map(parse_line, daemon.lines):
        if point.measurement == "wattd_run" and not point.fields.get("aborted"):
            key = (point.tags["run"], point.tags.get("phase"), point.tags["meter"])
            journaled[key] = (point.fields["start_ns"], point.t_ns, point.fields["energy_j"])
    assert set(journaled) == {
        ("all", "load", "a"), ("all", "load", "b"), ("all", None, "a"), ("all", None, "b"),
        ("all", "warm", "a"), ("all", "warm", "b"), ("only-b", None, "b")}

    result = scan_journal(tmp_path / "journal")
    found = {(r.run, r.phase, r.meter): r for r in result.records}
    assert set(found) == set(journaled) | {("only-b", "p", "b")}
    assert found[("only-b", "p", "b")].aborted
    for key, (start_ns, stop_ns, energy_j) in journaled.items():
        record = found[key]
        assert (record.start_ns, record.stop_ns) == (start_ns, stop_ns), key
        assert record.result is not None
        assert record.result.energy_j == pytest.approx(energy_j, rel=1e-12), key
    assert found[("all", "load", "a")].tags == {"lang": "rust", "n": "5"}
    assert result.stats.notes == []
