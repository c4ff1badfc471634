"""Pipeline writer: cycles started by readings once due; batch length from journal freshness."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import wattd.daemon.pipeline as pipeline_mod
from tests.clock_helpers import FakeClock, S
from tests.journal_helpers import until
from wattd.clock.gate import ClockStamp, SyncGate
from wattd.config import JournalConfig, MarkersConfig
from wattd.daemon.pipeline import Pipeline
from wattd.journal.reader import iter_lines
from wattd.journal.segments import list_segments
from wattd.journal.writer import Journal
from wattd.lineprotocol import parse_line
from wattd.markers.build import build_markers
from wattd.readings import Reading


def _reading(clock: FakeClock, meter: str = "m1", age_ns: int = 0) -> Reading:
    boot = clock.boot - age_ns
    return Reading(meter, boot + clock.offset, boot, 3.5)


async def _yield(times: int = 20) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=1.0))
    await j.open()
    yield j
    await j.close()


def test_batch_length_follows_the_freshness_of_the_stalest_meter(tmp_path: Path) -> None:
    clock = FakeClock()
    p = Pipeline(Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=1.0)), clock)
    assert (p.min_batch_s, p.max_batch_s, p.freshness_s) == pytest.approx((0.2, 0.6, 0.85))
    now = clock.boot
    # Newest reading released 0.4 s old (the marker hold-back): 0.85 - 0.4 s to go.
    p.plan_cycle(now, [_reading(clock, age_ns=6 * S // 10), _reading(clock, age_ns=4 * S // 10)])
    assert p.batch_s == pytest.approx(0.45)
    assert p.next_cycle_boot_ns == now + int(p.batch_s * S)
    # Two meters: the one whose newest reading is oldest decides.
    p.plan_cycle(now, [_reading(clock, "a", age_ns=S // 10), _reading(clock, "b", age_ns=S // 2)])
    assert p.batch_s == pytest.approx(0.35)
    # Fresh readings (no hold-back): at most 0.6 fsync intervals.
    p.plan_cycle(now, [_reading(clock)])
    assert p.batch_s == pytest.approx(0.6)
    # Stale readings (released after a wait): never shorter than the floor.
    p.plan_cycle(now, [_reading(clock, age_ns=5 * S)])
    assert p.batch_s == 0.2
    # Readings came in but are all held back: short; nothing came in: long.
    p.readings_in += 1
    p.plan_cycle(now, [])
    assert p.batch_s == 0.2
    p.plan_cycle(now, [])
    assert p.batch_s == pytest.approx(0.6)


def test_a_short_fsync_interval_keeps_short_batches(tmp_path: Path) -> None:
    p = Pipeline(Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=0.2)), FakeClock())
    assert (p.min_batch_s, p.max_batch_s) == pytest.approx((0.05, 0.12))


async def test_a_reading_starts_the_cycle_once_it_is_due(journal: Journal,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The quiet-meter timer far away: only readings start cycles here.
    monkeypatch.setattr(pipeline_mod, "QUIET_SLACK_S", 3600.0)
    clock = FakeClock()
    p = Pipeline(journal, clock)
    writer = asyncio.create_task(p.run())
    try:
        await _yield()
        assert p.progress == 0, "no reading, no cycle"
        p.on_reading(_reading(clock))  # nothing written yet: due at once
        await until(lambda: p.readings_written == 1)
        assert p.progress == 1
        p.on_reading(_reading(clock))
        await _yield()
        assert (p.progress, p.readings_written) == (1, 1), "not due yet: the reading waits"
        assert p.status()["pending"] == 0  # still in the stage, not lost
        clock.advance(int(p.batch_s * S))
        p.on_reading(_reading(clock))
        await until(lambda: p.readings_written == 3)
        assert p.progress == 2
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    assert len(list(iter_lines(journal.dir))) == 3


async def test_held_readings_are_released_when_no_reading_comes(journal: Journal) -> None:
    """A meter that goes quiet: the timer (batch + slack) still runs the cycle."""
    clock = FakeClock()  # never advances: after the first cycle no reading is ever due
    p = Pipeline(journal, clock)
    await p.start()
    try:
        p.on_reading(_reading(clock))
        await until(lambda: p.readings_written == 1)
        p.on_reading(_reading(clock))
        await _yield()
        assert p.progress == 1, "not due: the reading does not start a cycle"
        await until(lambda: p.readings_written == 2)
        assert p.progress == 2
    finally:
        await p.stop()


async def test_stages_in_order_and_drained_oldest_first(journal: Journal) -> None:
    """Stamp, hold-back tagging, sync gate: a cycle moves what the tagger releases into
    the gate; at shutdown the gate's (older) readings are written before the tagger's."""
    clock = FakeClock()
    stamp = ClockStamp(lambda: False)
    # a fixed hold-back: the learned frame period (1 s here) would lengthen it
    _, tagger = build_markers(MarkersConfig(holdback_ms=500.0), ["m1"], journal, clock)
    gate = SyncGate(lambda: False, require_sync=True, timeout_s=60, start_boot_ns=clock.boot)
    p = Pipeline(journal, clock, [stamp, tagger, gate])
    await p.start()
    try:
        p.on_reading(Reading("m1", clock.boot + clock.offset, clock.boot, 1.0))
        await until(lambda: p.progress == 1)
        assert gate.status()["held"] == 0, "still held back by the tagger"
        clock.advance(S)  # past the hold-back: the next cycle releases the first reading
        p.on_reading(Reading("m1", clock.boot + clock.offset, clock.boot, 2.0))
        await until(lambda: gate.status()["held"] == 1)
    finally:
        await p.stop()
    points = [parse_line(line) for _, line in iter_lines(journal.dir)]
    assert [(pt.fields["power_w"], pt.fields["clock_synced"]) for pt in points] == [
        (1.0, False), (2.0, False)]
    assert p.readings_written == 2


async def test_the_readings_a_cycle_feeds_start_no_second_cycle(journal: Journal) -> None:
    """A backlog's catch-up feeds readings in the cycle itself: they are due (the clock
    is past the plan), yet the cycle that feeds them is the one that writes them."""
    clock = FakeClock()
    p = Pipeline(journal, clock)
    kept: list[Reading] = []

    def catch_up() -> None:
        while kept:
            p.on_reading(kept.pop(0))

    p.register_backlog(catch_up)
    await p.start()
    try:
        await until(lambda: p.progress >= 1)
        for _ in range(3):
            clock.advance(10 * S)  # every reading is due
            written, progress = p.readings_written, p.progress
            kept.extend(_reading(clock) for _ in range(4))
            await until(lambda written=written: p.readings_written == written + 4)
            await asyncio.sleep(0.05)  # the next timer cycle is a batch (>= 0.2 s) away
            assert p.progress == progress + 1, "a reading fed by the cycle started another"
    finally:
        await p.stop()
    assert p.readings_written == 12


async def test_a_rotation_is_awaited_by_the_writer_and_nothing_is_lost(tmp_path: Path) -> None:
    """Cycles append without awaiting until a write would fill the segment; that batch
    goes through the writer task (rotation), in order, and the cycles go on."""
    journal = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=1.0, segment_bytes=4096))
    await journal.open()
    clock = FakeClock()
    p = Pipeline(journal, clock)
    await p.start()
    sent = []
    try:
        for i in range(150):
            clock.advance(S)  # each reading is due: one cycle per reading or so
            reading = Reading("m1", clock.boot + clock.offset, clock.boot, float(i))
            sent.append(float(i))
            p.on_reading(reading)
            await _yield(5)
        await until(lambda: p.readings_written == 150)
    finally:
        await p.stop()
        await journal.close()
    assert len(list_segments(tmp_path)) >= 3
    assert [parse_line(line).fields["power_w"] for _, line in iter_lines(tmp_path)] == sent


async def test_a_reading_that_cannot_be_written_is_dropped_once(journal: Journal) -> None:
    """A non-finite value has no line protocol: logged and dropped in its cycle, never
    kept and tried again, and the readings after it are written."""
    clock = FakeClock()
    p = Pipeline(journal, clock)
    await p.start()
    try:
        p.on_reading(Reading("m1", clock.boot + clock.offset, clock.boot, float("nan")))
        await until(lambda: p.progress >= 1)
        assert p.status()["pending"] == 0
        assert p.readings_written == 0
        clock.advance(S)
        p.on_reading(_reading(clock))
        await until(lambda: p.readings_written == 1)
    finally:
        await p.stop()
    assert [parse_line(line).fields["power_w"] for _, line in iter_lines(journal.dir)] == [3.5]


async def test_a_stop_while_the_writer_awaits_an_append_loses_nothing(journal: Journal) -> None:
    """Shutdown while the writer task awaits an append (here the journal is busy with a
    marker's durable append, whose fsync waits for a worker thread the test holds): the
    stop lets that append finish, so its readings are written, not dropped."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    release = threading.Event()
    loop.run_in_executor(None, release.wait)  # the worker thread is busy until released
    clock = FakeClock()
    p = Pipeline(journal, clock)
    await p.start()
    marker = 'wattd_marker,run=r,verb=start source="t" 1700000000000000000'
    durable = asyncio.create_task(journal.append([marker], durable=True))
    try:
        await _yield()
        assert not journal.append_now(["x v=1 1"]), "the durable append holds the journal"
        p.on_reading(_reading(clock))  # due at once: the cycle cannot append, the writer must
        await _yield()
        assert p.readings_in == 1
        assert p.readings_written == 0  # the writer task awaits the journal with it
        stopping = asyncio.create_task(p.stop())
        await _yield()
        assert not stopping.done(), "the stop waits for the append in progress"
    finally:
        release.set()
    await stopping
    await durable
    assert p.readings_written == 1
    lines = [parse_line(line) for _, line in iter_lines(journal.dir)]
    assert [point.measurement for point in lines] == ["wattd_marker", "wattd_power"]
