"""Serial source on a real pty served by the simulator: readings, stamps, unplug/replug."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wattd.protocols.base import DecodeError
from wattd.protocols.registry import get_driver
from wattd.readings import Reading
from wattd.simulator.meter import make_chip, start_simulated_meter
from wattd.sources.reconnect import LinkState, Reconnector
from wattd.sources.serial_config import make_serial_source
from wattd.sources.serial_source import SerialSource

BOOT_OFFSET_NS = 7_000_000_000_000


class OffsetClock:
    """Real time, with boottime a fixed offset away: stamps must keep that offset."""

    def __init__(self) -> None:
        self.last_real_ns = 0

    def realtime_ns(self) -> int:
        self.last_real_ns = time.time_ns()
        return self.last_real_ns

    def boottime_ns(self) -> int:
        return self.last_real_ns + BOOT_OFFSET_NS


def fast_reconnector(name: str) -> Reconnector:
    return Reconnector(name, initial_s=0.05, max_s=0.2, rng=random.Random(0))


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state lives in another thread/task
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout_s)


def make_source(port: str, readings: list[Reading], errors: list[DecodeError] | None = None,
                latency_ms: float = 2.0, *, vmin_wakeups: bool = True) -> SerialSource:
    spec = get_driver("cse7766")
    return SerialSource(
        "plug", port, spec, spec.make_decoder(), on_reading=readings.append,
        on_error=(errors.append if errors is not None else None), latency_ms=latency_ms,
        clock=OffsetClock(), static_tags={"room": "lab"}, vmin_wakeups=vmin_wakeups,
        reconnector=fast_reconnector("plug"))


def chip_frame(power_w: float = 80.0) -> bytes:
    return make_chip("cse7766", power_w=power_w, seed=3).frame_at(1.0)  # type: ignore[union-attr]


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal: the master (the meter's end) and the slave's path."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def test_readings_from_a_simulated_meter_on_a_pty(tmp_path: Path) -> None:
    sim = start_simulated_meter("cse7766", power_w=100.0, link_path=tmp_path / "tty", seed=1)
    readings: list[Reading] = []
    source = make_source(sim.port_path, readings)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: len(readings) >= 4)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
        sim.stop()
    r = readings[-1]
    assert r.meter == "plug"
    assert r.tags == {"room": "lab"}
    assert r.power_w == pytest.approx(100.0, rel=0.01)
    assert r.voltage_v == pytest.approx(230.0, abs=2)
    # clock_pair takes the midpoint of two realtime reads around the boottime read.
    assert abs(r.t_boot_ns - r.t_ns - BOOT_OFFSET_NS) < 100_000
    status = source.status()
    assert status["frames_ok"] >= 4
    assert status["state"] == LinkState.STOPPED.value
    assert status["last_reading_age_s"] is not None


def test_stamp_is_last_byte_arrival_minus_wire_time_minus_latency() -> None:
    readings: list[Reading] = []
    source = make_source("/nonexistent", readings, latency_ms=3.5)
    source.feed(chip_frame(5.0), real_ns=10_000_000_000, boot_ns=20_000_000_000)
    [r] = readings
    assert r.t_ns == 10_000_000_000 - 55_000_000 - 3_500_000
    assert r.t_boot_ns == r.t_ns + 10_000_000_000


def test_feed_decodes_bytes_read_at_a_clock_pair() -> None:
    """The public entry of bytes read elsewhere (the unpaced feed): a frame cut
    in two reads gives one reading, stamped from the second read's clock pair."""
    readings: list[Reading] = []
    source = make_source("/nonexistent", readings, latency_ms=0.0)
    frame = chip_frame()
    source.feed(frame[:10], 5_000_000_000, 9_000_000_000)
    assert readings == []
    source.feed(frame[10:], 6_000_000_000, 10_000_000_000)
    [r] = readings
    assert r.power_w == pytest.approx(80.0, rel=0.01)
    assert r.t_ns == 6_000_000_000 - source.settings.wire_time_ns(len(frame))
    assert r.t_boot_ns == r.t_ns + 4_000_000_000
    assert (source.bytes_read, source.reads, source.answers) == (len(frame), 2, 1)


def test_a_failing_reading_handler_is_counted_not_fatal() -> None:
    def boom(_: Reading) -> None:
        raise RuntimeError("handler bug")

    spec = get_driver("cse7766")
    source = SerialSource("plug", "/x", spec, spec.make_decoder(), on_reading=boom)
    source.feed(chip_frame(), 1, 1)
    source.feed(chip_frame(), 2, 2)  # the source goes on after a handler failed
    assert source.handler_errors == 2


async def test_unplug_and_replug_reconnects(tmp_path: Path) -> None:
    sim = start_simulated_meter("cse7766", power_w=50.0, link_path=tmp_path / "tty", seed=2)
    readings: list[Reading] = []
    errors: list[DecodeError] = []
    source = make_source(sim.port_path, readings, errors)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: len(readings) >= 2)
        sim.unplug()
        await wait_for(lambda: source.reconnector.state is LinkState.RETRYING)
        count = len(readings)
        sim.replug()
        await wait_for(lambda: source.reconnector.state is LinkState.CONNECTED)
        await wait_for(lambda: len(readings) >= count + 2)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
        sim.stop()
    assert source.status()["reconnects"] == 1
    assert readings[-1].power_w == pytest.approx(50.0, rel=0.01)
    # Whatever the unplug cut is counted, never raised.
    assert all(e.reason in ("incomplete", "checksum", "check_byte") for e in errors)


async def test_missing_port_keeps_retrying_and_stops_cleanly(tmp_path: Path) -> None:
    readings: list[Reading] = []
    source = make_source(str(tmp_path / "no-such-tty"), readings)
    task = asyncio.create_task(source.run())
    await wait_for(lambda: source.reconnector.failures >= 3)
    assert source.reconnector.state is LinkState.RETRYING
    source.stop()
    await asyncio.wait_for(task, 5)
    assert readings == []


def test_make_serial_source_from_a_meter_config() -> None:
    from wattd.config import MeterConfig

    meter = MeterConfig(name="pi", driver="gb202", port="/dev/ttyUSB0", tags={"host": "pi4"},
                        calibration={"kv": 1.9}, latency_ms=1.0)
    source = make_serial_source(meter, port="/dev/ttyUSB0", driver="gb202",
                                on_reading=lambda r: None)
    assert source.settings.baudrate == 4800
    assert source.settings.parity == "E"
    assert source.latency_ns == 1_000_000
    assert source.static_tags == {"host": "pi4"}
    assert source.decoder.driver == "gb202"


@pytest.mark.parametrize(("first", "second", "pauses"), [
    (2, 21, [1, 1]),  # 2 bytes in: sleep through the frame once, read the rest on waking
    (4, 16, [1, 1]),  # 4-byte chunks: after the bulk read, one chunk to go: stay
    (12, 8, [0, 0]),  # half the frame already in: two chunks to go, no sleep
])
async def test_reader_sleeps_through_a_frame_only_when_it_saves_reads(
        pty: tuple[int, str], first: int, second: int, pauses: list[int]) -> None:
    """With a wake-up per chunk (no VMIN), the reader stops watching the port while
    more than two reads of the size just seen are still to come. Bytes written while
    it sleeps are read when it wakes, and it is back for the frame's last byte."""
    master, path = pty
    readings: list[Reading] = []
    source = make_source(path, readings, latency_ms=0.0, vmin_wakeups=False)
    task = asyncio.create_task(source.run())
    frame = chip_frame()
    try:
        await wait_for(lambda: source.reconnector.state is LinkState.CONNECTED)
        got: list[int] = []
        at = 0
        for size in (first, second):
            os.write(master, frame[at:at + size])
            at += size
            await wait_for(lambda n=at: source.bytes_read == n)
            got.append(source.reader_pauses)
        assert got == pauses
        assert readings == []
        os.write(master, frame[at:])
        await wait_for(lambda: len(readings) == 1)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
    assert source.reads == 3
    assert readings[0].power_w == pytest.approx(80.0, rel=0.01)
