"""Stamp compensation (SPEC 7) on a real pty through the serial source.

A frame written whole at instant W arrives (last byte) at ~W, so its reading
must be stamped W - wire time - latency_ms. Checked exactly with an injected
arrival clock, and against the real clocks with a tolerance wide enough for
a shared machine (the tight figure is bench/bench_stamp.py's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.clock_helpers import FakeClock
from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.protocols.registry import get_driver
from wattd.readings import Reading
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.power_profile import ConstantPower
from wattd.sources.serial_source import SerialSource

MS = 1_000_000
LATENCY_MS = 2.5
SPEC = get_driver("hlw8032")
WIRE_NS = SPEC.serial.wire_time_ns(SPEC.frame_bytes)  # 24 bytes at 4800 8E1 = 55 ms


@dataclass
class PtyMeter:
    master: int
    path: str
    source: SerialSource
    readings: list[Reading] = field(default_factory=list)
    chip: ChipModel = field(default_factory=lambda: ChipModel(ConstantPower(60.0)))
    t_s: float = 0.0

    def frame(self) -> bytes:
        self.t_s += 0.1
        return self.chip.frame_at(self.t_s)

    async def next_reading(self, count: int) -> Reading:
        for _ in range(500):  # bounded wait (5 s)
            if len(self.readings) >= count:
                return self.readings[count - 1]
            await asyncio.sleep(0.01)
        pytest.fail(f"no reading {count} (got {len(self.readings)})")


@contextlib.asynccontextmanager
async def pty_meter(clock: Clock) -> AsyncIterator[PtyMeter]:
    """A serial source reading the slave side of a fresh pty; the test writes the master."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    readings: list[Reading] = []
    source = SerialSource("m1", path, SPEC, SPEC.make_decoder({"kv": 1.0}),
                          on_reading=readings.append, latency_ms=LATENCY_MS, clock=clock)
    task = asyncio.create_task(source.run())
    try:
        for _ in range(500):
            if source.reconnector.state.value == "connected":
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("serial source did not open the pty")
        yield PtyMeter(master, path, source, readings)
    finally:
        source.stop()
        await asyncio.wait_for(task, 10)
        os.close(master)
        os.close(slave)


async def test_stamp_exact_through_injected_arrival_clock() -> None:
    clock = FakeClock()
    async with pty_meter(clock) as meter:
        for i in range(1, 4):
            clock.advance(1_000 * MS + i * 37)  # the arrival instant the source will read
            os.write(meter.master, meter.frame())
            reading = await meter.next_reading(i)
            assert reading.t_ns == clock.realtime_ns() - WIRE_NS - round(LATENCY_MS * MS)
            assert reading.t_boot_ns == clock.boottime_ns() - WIRE_NS - round(LATENCY_MS * MS)
            assert reading.power_w == pytest.approx(60.0, rel=0.01)


async def test_stamp_on_real_clocks_is_write_time_minus_wire_time() -> None:
    compensation_ns = WIRE_NS + round(LATENCY_MS * MS)
    async with pty_meter(SYSTEM_CLOCK) as meter:
        errors_ms = []
        for i in range(1, 11):
            frame = meter.frame()
            written_real = SYSTEM_CLOCK.realtime_ns()
            written_boot = SYSTEM_CLOCK.boottime_ns()
            os.write(meter.master, frame)
            reading = await meter.next_reading(i)
            # never earlier than the write (less a little clock-reading jitter) ...
            error_ns = reading.t_ns - (written_real - compensation_ns)
            assert error_ns > -1 * MS
            # ... and the boot-time stamp is the same instant on the other clock
            boot_error_ns = reading.t_boot_ns - (written_boot - compensation_ns)
            assert abs(boot_error_ns - error_ns) < 5 * MS
            errors_ms.append(error_ns / MS)
            await asyncio.sleep(0.02)
        # shared 2-core machine: generous; the p99 <= 5 ms target is measured by the benchmark
        assert sorted(errors_ms)[len(errors_ms) // 2] < 50, errors_ms
        assert max(errors_ms) < 250, errors_ms
