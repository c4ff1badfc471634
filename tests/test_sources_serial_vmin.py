"""termios VMIN wake-ups on a real pty: one read per frame in step, realignment after garbage."""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
from collections.abc import Iterator

import pytest

from wattd.protocols.registry import get_driver
from wattd.readings import Reading
from wattd.simulator.meter import make_chip
from wattd.sources.reconnect import LinkState
from wattd.sources.serial_source import SerialSource

from .test_sources_serial import make_source, wait_for

CHUNK = 4  # a USB adapter's chunk, as the simulator writes


def frames(count: int) -> list[bytes]:
    chip = make_chip("cse7766", power_w=80.0, seed=5)
    return [chip.frame_at(0.1 * (i + 1)) for i in range(count)]  # type: ignore[union-attr]


@pytest.fixture
def pty() -> Iterator[tuple[int, int, str]]:
    master, slave = os.openpty()
    try:
        yield master, slave, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def write_chunked(master: int, data: bytes) -> None:
    """Bytes in adapter-sized chunks, with time for the reader to wake between them."""
    for at in range(0, len(data), CHUNK):
        os.write(master, data[at:at + CHUNK])
        await asyncio.sleep(0.005)


async def start(source: SerialSource) -> asyncio.Task[None]:
    task = asyncio.create_task(source.run())
    await wait_for(lambda: source.reconnector.state is LinkState.CONNECTED)
    return task


async def test_one_read_per_frame_in_step_and_realignment_after_garbage(
        pty: tuple[int, int, str]) -> None:
    master, slave, path = pty
    readings: list[Reading] = []
    source = make_source(path, readings, latency_ms=0.0)
    task = await start(source)
    try:
        assert termios.tcgetattr(slave)[6][termios.VMIN] == 24
        assert termios.tcgetattr(slave)[6][termios.VTIME] == 0
        assert source.vmin_sets == 1
        sent = frames(9)
        for i, frame in enumerate(sent[:4]):  # in step: the kernel wakes us at the last byte
            await write_chunked(master, frame)
            await wait_for(lambda n=i + 1: len(readings) == n)
        assert source.reads == 4
        assert source.vmin_sets == 1  # no tcsetattr per frame
        # 7 bytes of garbage: the next read (at 24 bytes) holds 7 garbage + 17..20 bytes
        # of a frame; VMIN drops to the bytes still missing, then back to the frame size.
        await write_chunked(master, b"\x11" * 7)
        await write_chunked(master, sent[4])
        await wait_for(lambda: len(readings) == 5)
        assert source.reads == 6
        assert source.vmin_sets == 3
        assert termios.tcgetattr(slave)[6][termios.VMIN] == 24
        for i, frame in enumerate(sent[5:], start=6):  # in step again
            await write_chunked(master, frame)
            await wait_for(lambda n=i: len(readings) == n)
        assert source.reads == 10
        assert source.vmin_sets == 3
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
    assert source.decoder.counters.skipped_bytes == 7
    assert source.decoder.counters.frames_ok == 9
    assert all(r.power_w == pytest.approx(80.0, rel=0.01) for r in readings)


async def test_each_frame_is_read_when_its_last_byte_arrives(pty: tuple[int, int, str]) -> None:
    """Stamps keep their precision: the frame's reading is there right after its last
    chunk, never before (a read waits for the whole frame) and never needs the next one."""
    master, _slave, path = pty
    readings: list[Reading] = []
    source = make_source(path, readings, latency_ms=0.0)
    task = await start(source)
    try:
        for frame in frames(3):
            count = len(readings)
            await write_chunked(master, frame[:-1])
            await asyncio.sleep(0.02)
            assert len(readings) == count  # 23 bytes in: nothing read yet
            os.write(master, frame[-1:])
            await wait_for(lambda c=count: len(readings) == c + 1)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
    assert source.reads == 3


async def test_a_chip_stopping_mid_frame_then_unplugged_does_not_wedge(
        pty: tuple[int, int, str]) -> None:
    master, _slave, path = pty
    readings: list[Reading] = []
    source = make_source(path, readings, latency_ms=0.0)
    task = await start(source)
    try:
        sent = frames(2)
        await write_chunked(master, sent[0])
        await wait_for(lambda: len(readings) == 1)
        await write_chunked(master, sent[1][:10])  # the chip stops: 10 bytes stay unread
        await asyncio.sleep(0.05)
        assert source.reads == 1
        os.close(master)  # unplug: the hang-up wakes the reader whatever VMIN is
        await wait_for(lambda: source.reconnector.state is LinkState.RETRYING)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
    assert source.status()["last_error"]


async def test_without_vmin_a_frame_is_read_as_its_chunks_come(
        pty: tuple[int, int, str]) -> None:
    """What a port that refuses VMIN gets: the tty's VMIN is left as opened, the
    reader wakes per chunk, and the frame's reading comes with its last chunk."""
    master, slave, path = pty
    readings: list[Reading] = []
    source = make_source(path, readings, latency_ms=0.0, vmin_wakeups=False)
    task = await start(source)
    try:
        assert termios.tcgetattr(slave)[6][termios.VMIN] != 24
        frame = frames(1)[0]
        os.write(master, frame[:CHUNK])
        await wait_for(lambda: source.bytes_read == CHUNK)
        assert readings == []
        os.write(master, frame[CHUNK:])
        await wait_for(lambda: len(readings) == 1)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
    assert (source.reads, source.vmin_sets) == (2, 0)
    assert readings[0].power_w == pytest.approx(80.0, rel=0.01)


@pytest.mark.parametrize("driver", ["bl0940", "bl0942"])
def test_bl09xx_bytes_pending_counts_the_rest_of_an_answer(driver: str) -> None:
    from wattd.protocols.bl09xx import HEADER, encode_answer

    decoder = get_driver(driver).make_decoder()
    answer = encode_answer(decoder, voltage_v=230.0, current_a=0.5,  # type: ignore[arg-type]
                           power_w=100.0, cf_cnt=0)
    frame_len = get_driver(driver).frame_bytes
    assert len(answer) == frame_len
    assert decoder.bytes_pending() == 0  # type: ignore[attr-defined]
    decoder.feed(b"\x00\x01" + answer[:9], 1)
    assert decoder.bytes_pending() == frame_len - 9  # type: ignore[attr-defined]
    assert decoder.feed(answer[9:], 2)
    assert decoder.bytes_pending() == 0  # type: ignore[attr-defined]
    decoder.feed(bytes((0, HEADER)), 3)
    assert decoder.bytes_pending() == frame_len - 1  # type: ignore[attr-defined]
