"""The serial source polling a simulated BL0942 / BL0940 over a real pty: readings at
the poll cadence, a silent chip counted as no_answer without stalling, recovery."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from wattd.config import MeterConfig
from wattd.protocols.base import DecodeError
from wattd.readings import Reading
from wattd.simulator.chip_bl09xx import PolledChipModel
from wattd.simulator.meter import start_simulated_meter
from wattd.sources.reconnect import Reconnector
from wattd.sources.serial_config import make_serial_source


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state lives in another thread/task
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout_s)


@pytest.mark.parametrize(("driver", "address"), [("bl0942", 2), ("bl0940", 0)])
async def test_polled_chip_readings_silence_and_recovery(tmp_path: Path, driver: str,
                                                         address: int) -> None:
    sim = start_simulated_meter(driver, power_w=42.0, link_path=tmp_path / "tty", seed=2,
                                address=address)
    chip = sim.chip
    assert isinstance(chip, PolledChipModel)
    meter = MeterConfig(name="bl", driver=driver, port=sim.port_path, address=address,
                        poll_interval_s=0.05, tags={"desk": "1"})
    readings: list[Reading] = []
    errors: list[DecodeError] = []
    source = make_serial_source(meter, port=sim.port_path, driver=driver,
                                on_reading=readings.append, on_error=errors.append)
    source.reconnector = Reconnector("bl", initial_s=0.05, max_s=0.2, rng=random.Random(0))
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: len(readings) >= 3)
        assert all(r.power_w == pytest.approx(42.0, rel=1e-3) for r in readings)
        assert readings[-1].tags == {"desk": "1"}
        chip.silent = True  # a wedged chip: polls go on, answers stop
        polls_when_silenced = chip.polls
        await wait_for(lambda: source.no_answer >= 3)
        assert chip.polls >= polls_when_silenced + 3  # never stalled
        assert source.status()["no_answer"] == source.no_answer
        assert any(e.reason == "no_answer" for e in errors)
        count = len(readings)
        chip.silent = False
        await wait_for(lambda: len(readings) >= count + 3)
        energies = [r.energy_j for r in readings if r.energy_j is not None]
        assert energies == sorted(energies)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)
        sim.stop()
