"""Serial source on a real pty served by the simulator: readings, stamps, unplug/replug."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wattd.protocols.base import DecodeError, Measurement
from wattd.protocols.registry import get_driver
from wattd.readings import Reading
from wattd.simulator.meter import make_chip, start_simulated_meter
from wattd.sources.reconnect import LinkState, Reconnector
from wattd.sources.serial_source import SerialSource, make_serial_source

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
                latency_ms: float = 2.0) -> SerialSource:
    spec = get_driver("cse7766")
    return SerialSource(
        "plug", port, spec, spec.make_decoder(), on_reading=readings.append,
        on_error=(errors.append if errors is not None else None), latency_ms=latency_ms,
        clock=OffsetClock(), static_tags={"room": "lab"},
        reconnector=fast_reconnector("plug"))


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
    m = Measurement(t_ns=10_000_000_000, frame_bytes=24, power_w=5.0)
    source._dispatch([m], real_ns=10_000_000_000, boot_ns=20_000_000_000)
    [r] = readings
    assert r.t_ns == 10_000_000_000 - 55_000_000 - 3_500_000
    assert r.t_boot_ns == r.t_ns + 10_000_000_000


def test_feed_decodes_bytes_read_at_a_clock_pair() -> None:
    """The public entry of bytes read elsewhere (the unpaced feed): a frame cut
    in two reads gives one reading, stamped from the second read's clock pair."""
    readings: list[Reading] = []
    source = make_source("/nonexistent", readings, latency_ms=0.0)
    frame = make_chip("cse7766", power_w=80.0, seed=3).frame_at(1.0)  # type: ignore[union-attr]
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
    source._dispatch([Measurement(t_ns=1, frame_bytes=24, power_w=1.0)], 1, 1)
    assert source.handler_errors == 1


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


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    rc = Reconnector("m", initial_s=0.5, max_s=30.0, jitter=0.2, rng=random.Random(1))
    delays = [rc.next_delay_s() for _ in range(12)]
    assert 0.4 <= delays[0] <= 0.6
    assert 0.8 <= delays[1] <= 1.2
    assert all(d <= 30.0 for d in delays)
    assert delays[-1] >= 24.0


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


@pytest.mark.parametrize(("first", "second", "sleeps"), [
    (2, 21, [True, False]),  # byte by byte: sleep through the frame once, read the last byte
    (4, 16, [True, False]),  # 4-byte chunks: after the bulk read, one chunk to go: stay
    (12, 8, [False, False]),  # half the frame already in: two chunks to go, no sleep
])
async def test_sleep_through_frame_only_when_it_saves_reads(first: int, second: int,
                                                            sleeps: list[bool]) -> None:
    """Sleeping through a frame (remove the reader, a timer, re-add it) is done only
    while more than two reads of the size just seen are still to come; whatever
    happens, the reader is back for the frame's last byte."""
    readings: list[Reading] = []
    source = make_source("/nonexistent", readings, latency_ms=0.0)
    frame = make_chip("cse7766", power_w=80.0, seed=3).frame_at(1.0)  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    source._fd = read_fd
    loop.add_reader(read_fd, source._on_readable, read_fd)
    try:
        got: list[bool] = []
        at = 0
        for size in (first, second):
            source.feed(frame[at:at + size], 1_000_000_000, 2_000_000_000)
            at += size
            source._sleep_through_frame(read_fd, size)
            got.append(source._resume is not None)
            if source._resume is not None:
                source._resume.cancel()
                source._resume_reading(read_fd)
        assert got == sleeps
        assert read_fd in loop._selector.get_map()  # type: ignore[attr-defined]
        source.feed(frame[at:], 1_000_000_000, 2_000_000_000)
        assert len(readings) == 1
    finally:
        loop.remove_reader(read_fd)
        os.close(read_fd)
        os.close(write_fd)
