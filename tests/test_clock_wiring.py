"""The clock service on a real pipeline and journal: clock_synced, require_sync, step events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.clock_helpers import FakeClock, S
from wattd.clock import adjtimex as ax
from wattd.clock.wiring import ClockService
from wattd.config import Config, load_config_text
from wattd.daemon.pipeline import Pipeline
from wattd.journal.reader import iter_lines
from wattd.journal.writer import Journal
from wattd.lineprotocol import parse_line
from wattd.readings import Reading

CONFIG = """\
meters:
  - name: m1
    driver: simulated
    power_w: 3.5
journal:
  dir: {dir}
clock:
  require_sync: {require_sync}
  require_sync_timeout_s: 60
  poll_interval_s: 3600
"""


class Rig:
    """The clock service with its two stages in a real pipeline and journal, started and
    stopped in the daemon's order."""

    def __init__(self, cfg: Config, clock: FakeClock, reader: ax.StaticReader) -> None:
        self.cfg, self.clock, self.reader = cfg, clock, reader
        self.journal = Journal(cfg.journal)
        self.service = ClockService(cfg.clock, clock, self.journal, n_meters=1, reader=reader)
        self.pipeline = Pipeline(self.journal, clock, [self.service.stamp, self.service.gate])
        self.count = 0

    async def start(self, *, writer: bool = True) -> None:
        await self.journal.start()
        if writer:
            await self.pipeline.start()
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
        await self.pipeline.stop()
        await self.journal.stop()

    def reading(self, power_w: float | None = None) -> None:
        self.count += 1
        self.pipeline.on_reading(Reading("m1", self.clock.realtime_ns(), self.clock.boot,
                                         float(self.count) if power_w is None else power_w))

    def lines(self) -> list[Any]:
        return [parse_line(line) for _, line in iter_lines(self.cfg.journal.dir)]

    async def settle(self) -> None:
        """Let the pipeline writer run a few cycles (it wakes at least every 50 ms)."""
        progress = self.pipeline.progress
        for _ in range(200):
            await asyncio.sleep(0.01)
            if self.pipeline.progress >= progress + 2:
                return
        pytest.fail("pipeline writer did not run")


@pytest.fixture(params=[True, False], ids=["require_sync", "no_require_sync"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    cfg = load_config_text(CONFIG.format(dir=tmp_path / "journal",
                                         require_sync=str(request.param).lower()))
    rig = Rig(cfg, FakeClock(), ax.StaticReader(ax.UNSYNCED))
    await rig.start()
    try:
        yield rig
    finally:
        await rig.stop()


async def test_readings_held_until_sync_and_flagged(rig: Rig) -> None:
    require_sync = rig.cfg.clock.require_sync
    for _ in range(3):
        rig.reading()
    await rig.settle()
    powers = [p.fields["power_w"] for p in rig.lines() if p.measurement == "wattd_power"]
    assert powers == ([] if require_sync else [1.0, 2.0, 3.0])
    assert rig.service.status()["gate"]["holding"] is require_sync  # type: ignore[index]

    rig.reader.state = ax.SYNCED_CHRONY
    rig.service.health.poll()
    rig.reading()
    await rig.settle()
    points = [p for p in rig.lines() if p.measurement == "wattd_power"]
    assert [p.fields["power_w"] for p in points] == [1.0, 2.0, 3.0, 4.0]
    assert [p.fields["clock_synced"] for p in points] == [False, False, False, True]
    status = rig.service.status()
    assert status["synced"] is True
    assert status["gate"]["holding"] is False  # type: ignore[index]


async def test_step_becomes_a_durable_marker_event(rig: Rig) -> None:
    clock = rig.clock
    before = clock.boot
    clock.advance(5 * S)
    clock.offset += 3 * S  # realtime jumps 3 s forward
    rig.service.health.poll()
    await rig.settle()
    markers = [p for p in rig.lines() if p.measurement == "wattd_marker"]
    assert len(markers) == 1
    assert markers[0].tags == {"run": "clock_step", "verb": "event"}
    assert markers[0].fields["text"] == "step_ms=+3000.000"
    assert rig.service.stepped_between(before, clock.boot)
    assert not rig.service.stepped_between(clock.boot + S, clock.boot + 2 * S)
    assert rig.service.status()["steps"] == 1


async def test_shutdown_drains_held_readings(tmp_path: Path) -> None:
    cfg = load_config_text(CONFIG.format(dir=tmp_path / "j", require_sync="true"))
    rig = Rig(cfg, FakeClock(), ax.StaticReader(ax.UNSYNCED))
    await rig.start(writer=False)
    rig.reading(5.0)
    assert rig.service.status()["gate"]["held"] == 1  # type: ignore[index]
    await rig.stop()
    points = rig.lines()
    assert [(p.fields["power_w"], p.fields["clock_synced"]) for p in points] == [(5.0, False)]
