"""install_clock on a real pipeline and journal: clock_synced, require_sync, step events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.clock_helpers import FakeClock, S
from wattd.clock import adjtimex as ax
from wattd.clock.wiring import ClockService, install_clock
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


class MiniDaemon:
    """The parts of wattd.daemon.app.Daemon that install_clock uses."""

    def __init__(self, cfg: Config, clock: FakeClock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.journal = Journal(cfg.journal)
        self.pipeline = Pipeline(self.journal, clock)
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        self.statuses: dict[str, Callable[[], dict[str, Any]]] = {}

    def add_status(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        self.statuses[name] = fn


class Rig:
    def __init__(self, daemon: MiniDaemon, service: ClockService,
                 reader: ax.StaticReader) -> None:
        self.daemon, self.service, self.reader = daemon, service, reader
        self.count = 0

    def reading(self) -> None:
        self.count += 1
        clock = self.daemon.clock
        self.daemon.pipeline.on_reading(Reading("m1", clock.realtime_ns(), clock.boot,
                                                float(self.count)))

    def lines(self) -> list[Any]:
        return [parse_line(line) for _, line in iter_lines(self.daemon.cfg.journal.dir)]

    async def settle(self) -> None:
        """Let the pipeline writer run a few cycles (it wakes at least every 50 ms)."""
        progress = self.daemon.pipeline.progress
        for _ in range(200):
            await asyncio.sleep(0.01)
            if self.daemon.pipeline.progress >= progress + 2:
                return
        pytest.fail("pipeline writer did not run")


@pytest.fixture(params=[True, False], ids=["require_sync", "no_require_sync"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    cfg = load_config_text(CONFIG.format(dir=tmp_path / "journal",
                                         require_sync=str(request.param).lower()))
    daemon = MiniDaemon(cfg, FakeClock())
    reader = ax.StaticReader(ax.UNSYNCED)
    service = install_clock(daemon, reader)
    await daemon.journal.open()
    writer = asyncio.create_task(daemon.pipeline.run())
    for hook in daemon.startup_hooks:
        await hook()
    try:
        yield Rig(daemon, service, reader)
    finally:
        for hook in daemon.shutdown_hooks:
            await hook()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await daemon.pipeline.drain()
        await daemon.journal.close()


async def test_readings_held_until_sync_and_flagged(rig: Rig) -> None:
    require_sync = rig.daemon.cfg.clock.require_sync
    for _ in range(3):
        rig.reading()
    await rig.settle()
    powers = [p.fields["power_w"] for p in rig.lines() if p.measurement == "wattd_power"]
    assert powers == ([] if require_sync else [1.0, 2.0, 3.0])
    assert rig.daemon.statuses["clock"]()["gate"]["holding"] is require_sync  # type: ignore[index]

    rig.reader.state = ax.SYNCED_CHRONY
    rig.service.health.poll()
    rig.reading()
    await rig.settle()
    points = [p for p in rig.lines() if p.measurement == "wattd_power"]
    assert [p.fields["power_w"] for p in points] == [1.0, 2.0, 3.0, 4.0]
    assert [p.fields["clock_synced"] for p in points] == [False, False, False, True]
    status = rig.daemon.statuses["clock"]()
    assert status["synced"] is True
    assert status["gate"]["holding"] is False  # type: ignore[index]


async def test_step_becomes_a_durable_marker_event(rig: Rig) -> None:
    clock = rig.daemon.clock
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
    assert rig.daemon.statuses["clock"]()["steps"] == 1


async def test_shutdown_drains_held_readings(tmp_path: Path) -> None:
    cfg = load_config_text(CONFIG.format(dir=tmp_path / "j", require_sync="true"))
    daemon = MiniDaemon(cfg, FakeClock())
    install_clock(daemon, ax.StaticReader(ax.UNSYNCED))
    await daemon.journal.open()
    for hook in daemon.startup_hooks:
        await hook()
    clock = daemon.clock
    daemon.pipeline.on_reading(Reading("m1", clock.realtime_ns(), clock.boot, 5.0))
    ready = daemon.pipeline.stage.pop_ready(clock.boot)
    assert daemon.pipeline.sync_gate is not None
    assert daemon.pipeline.sync_gate.release(ready, clock.boot) == []
    for hook in daemon.shutdown_hooks:
        await hook()
    await daemon.pipeline.drain()
    await daemon.journal.close()
    points = [parse_line(line) for _, line in iter_lines(cfg.journal.dir)]
    assert [(p.fields["power_w"], p.fields["clock_synced"]) for p in points] == [(5.0, False)]
