"""Whole frames kept for the pipeline's cycle, on a real pty: fed in order with their
read-time stamps, at once while a stop waits, and before a read that is not a whole frame."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wattd.clock.timesource import SYSTEM_CLOCK
from wattd.config import JournalConfig
from wattd.daemon.pipeline import Pipeline
from wattd.journal.writer import Journal
from wattd.protocols.registry import get_driver
from wattd.readings import Reading
from wattd.simulator.meter import make_chip
from wattd.sources.frame_backlog import FrameBacklog
from wattd.sources.reconnect import LinkState
from wattd.sources.serial_source import SerialSource

from .test_sources_serial import fast_reconnector, wait_for


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def frames(count: int) -> list[bytes]:
    chip = make_chip("cse7766", power_w=80.0, seed=5)
    return [chip.frame_at(0.1 * (i + 1)) for i in range(count)]  # type: ignore[union-attr]


class Urgency:
    def __init__(self) -> None:
        self.now = False

    def __call__(self) -> bool:
        return self.now


async def started(path: str, tmp_path: Path, urgent: Urgency
                  ) -> tuple[SerialSource, Pipeline, list[Reading], asyncio.Task[None]]:
    """A source whose deferral is a real pipeline (its writer task not started, so
    only the test's catch_up feeds the kept frames)."""
    pipeline = Pipeline(Journal(JournalConfig(dir=str(tmp_path))), SYSTEM_CLOCK, urgent=urgent)
    seen: list[Reading] = []

    def on_reading(reading: Reading) -> None:
        seen.append(reading)
        pipeline.on_reading(reading)

    spec = get_driver("cse7766")
    source = SerialSource("plug", path, spec, spec.make_decoder(), on_reading=on_reading,
                          reconnector=fast_reconnector("plug"), deferral=pipeline)
    task = asyncio.create_task(source.run())
    await wait_for(lambda: source.reconnector.state is LinkState.CONNECTED)
    return source, pipeline, seen, task


async def test_kept_frames_are_fed_in_order_with_their_read_stamps(
        pty: tuple[int, str], tmp_path: Path) -> None:
    master, path = pty
    source, pipeline, seen, task = await started(path, tmp_path, Urgency())
    try:
        assert source.backlog is not None
        written_boot_ns = []
        for frame in frames(3):
            written_boot_ns.append(time.clock_gettime_ns(time.CLOCK_BOOTTIME))
            os.write(master, frame)
            await asyncio.sleep(0.15)
        await wait_for(lambda: source.backlog is not None and len(source.backlog) == 3)
        assert seen == []  # read and stamped, not decoded yet
        caught_up_boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        pipeline.catch_up()
        assert len(seen) == 3
        assert len(source.backlog) == 0
        assert pipeline.readings_in == 3
        # each stamp is its own read's (the frame's arrival less its wire time), long
        # before the catch-up, and in order
        for reading, written in zip(seen, written_boot_ns, strict=True):
            assert written - 100_000_000 < reading.t_boot_ns < written + 100_000_000
        assert seen[0].t_boot_ns < seen[1].t_boot_ns < seen[2].t_boot_ns
        assert seen[2].t_boot_ns < caught_up_boot_ns - 50_000_000
        assert all(r.power_w == pytest.approx(80.0, rel=0.01) for r in seen)
        assert source.readings == 3
        assert source.reads == 3
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)


async def test_nothing_is_kept_while_a_stage_needs_readings_at_once(
        pty: tuple[int, str], tmp_path: Path) -> None:
    master, path = pty
    urgent = Urgency()
    source, pipeline, seen, task = await started(path, tmp_path, urgent)
    try:
        sent = frames(3)
        os.write(master, sent[0])
        await wait_for(lambda: source.backlog is not None and len(source.backlog) == 1)
        urgent.now = True  # a stop waits for its bracketing reading
        pipeline.update_urgency()  # what the marker service calls after the engine
        os.write(master, sent[1])
        # the kept frame first, then this one, both at once
        await wait_for(lambda: len(seen) == 2)
        assert source.backlog is not None
        assert len(source.backlog) == 0
        assert seen[0].t_boot_ns < seen[1].t_boot_ns
        urgent.now = False
        pipeline.update_urgency()
        os.write(master, sent[2])
        await wait_for(lambda: source.backlog is not None and len(source.backlog) == 1)
        assert len(seen) == 2
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
    assert len(seen) == 3  # the port's close feeds what was kept


async def test_a_read_that_is_not_a_whole_frame_feeds_the_kept_ones_first(
        pty: tuple[int, str], tmp_path: Path) -> None:
    master, path = pty
    source, _pipeline, seen, task = await started(path, tmp_path, Urgency())
    try:
        sent = frames(2)
        os.write(master, sent[0])
        await wait_for(lambda: source.backlog is not None and len(source.backlog) == 1)
        os.write(master, b"\x11" * 3 + sent[1][:21])  # garbage, then most of a frame
        await wait_for(lambda: len(seen) == 1)  # the kept frame, fed before this read
        os.write(master, sent[1][21:])
        await wait_for(lambda: len(seen) == 2)
        assert source.decoder.counters.skipped_bytes == 3
        assert source.decoder.counters.frames_ok == 2
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)


class HeldClock:
    """The system clock, whose boot-time read waits for the test once ``hold`` is set:
    the reader thread is then between its read and the keeping of it."""

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.inside = threading.Event()
        self.release = threading.Event()

    def realtime_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_REALTIME)

    def boottime_ns(self) -> int:
        if self.hold.is_set():
            self.inside.set()
            self.release.wait(10.0)
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


class NoDeferral:
    urgent_now = False

    def register_backlog(self, catch_up: Callable[[], None]) -> None:
        pass


async def test_a_catch_up_takes_a_read_the_thread_has_not_kept_yet(
        pty: tuple[int, str]) -> None:
    # A marker's catch-up must see every read stamped before it: a read the thread
    # took and is stamping when the catch-up begins is fed by that catch-up.
    master, path = pty
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(slave)
    fed: list[bytes] = []
    backlog = FrameBacklog(lambda data, _rt, _boot: fed.append(data), lambda _d: True,
                           NoDeferral())
    clock = HeldClock()
    releaser: threading.Timer | None = None
    backlog.start(slave, clock, lambda reason: None)
    try:
        clock.hold.set()
        frame = frames(1)[0]
        os.write(master, frame)
        assert await asyncio.to_thread(clock.inside.wait, 10.0)
        releaser = threading.Timer(0.05, clock.release.set)
        releaser.start()
        backlog.catch_up()  # waits for the read in flight
        assert fed == [frame]
    finally:
        clock.release.set()
        backlog.stop()
        if releaser is not None:
            releaser.cancel()
            releaser.join()
        os.close(slave)
