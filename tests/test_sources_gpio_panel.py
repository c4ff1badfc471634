"""GPIO panel on gpiozero's MockFactory: LED follows open runs, the button starts and
stops a manual run through real UDP markers to the daemon's marker service (real
engine, real journal), a busy pin is a counted error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path

import pytest
from gpiozero import Device, DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from wattd.clock.timesource import SYSTEM_CLOCK
from wattd.config import GpioConfig, JournalConfig, MarkersConfig
from wattd.journal.reader import iter_lines
from wattd.journal.writer import Journal
from wattd.lineprotocol import parse_line
from wattd.markers.build import build_markers
from wattd.markers.client import send_marker
from wattd.markers.server import MarkerService
from wattd.readings import Reading
from wattd.sources.gpio_panel import GpioPanel, udp_sender


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = mock
    yield mock
    mock.close()
    Device.pin_factory = previous


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - state changes in other tasks
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def spawn(name: str, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


@pytest.fixture
async def markers(tmp_path: Path) -> AsyncIterator[MarkerService]:
    """The daemon's marker service on a real loopback UDP port, fed a reading every
    20 ms (a stop is answered once a reading after it came in)."""
    journal = Journal(JournalConfig(dir=str(tmp_path / "journal")))
    await journal.start()
    service, tagger = build_markers(MarkersConfig(listen=["127.0.0.1:0"]), ["m1"], journal,
                                    SYSTEM_CLOCK)
    await service.start()

    async def feed() -> None:
        while True:
            tagger.push(Reading("m1", SYSTEM_CLOCK.realtime_ns(), SYSTEM_CLOCK.boottime_ns(),
                                 10.0))
            tagger.pop_ready(SYSTEM_CLOCK.boottime_ns())
            await asyncio.sleep(0.02)

    feeder = asyncio.create_task(feed())
    try:
        yield service
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await service.stop()
        await journal.stop()


def open_runs(service: MarkerService) -> list[str]:
    return sorted({str(r["run"]) for r in service.engine.open_runs()})


def journalled_markers(service: MarkerService) -> list[tuple[str, str]]:
    assert isinstance(service.journal, Journal)
    points = [parse_line(line) for _, line in iter_lines(service.journal.dir)]
    return [(p.tags["verb"], p.tags["run"]) for p in points if p.measurement == "wattd_marker"]


async def test_button_starts_and_stops_a_manual_run_over_udp(
        factory: MockFactory, markers: MarkerService) -> None:
    port = markers.addresses[0][1]
    # "all interfaces" in the config: the panel sends to loopback
    sender = MarkersConfig(listen=[f"0.0.0.0:{port}"])
    panel = GpioPanel(GpioConfig(status_led_pin=23, button_pin=24),
                      runs_open=lambda: open_runs(markers), send=udp_sender(sender),
                      spawn=spawn, refresh_s=0.02)
    await panel.start()
    try:
        await wait_for(lambda: panel.status()["open"])
        assert factory.pin(23).state is False
        factory.pin(24).drive_low()  # press
        factory.pin(24).drive_high()
        await wait_for(lambda: panel.manual_run is not None)
        run = panel.manual_run
        assert run is not None
        assert run.startswith("manual-")
        assert open_runs(markers) == [run]
        await wait_for(lambda: factory.pin(23).state is True)
        await asyncio.sleep(0.06)  # past the button's 50 ms bounce time
        factory.pin(24).drive_low()  # press again: stop
        factory.pin(24).drive_high()
        await wait_for(lambda: panel.manual_run is None and not open_runs(markers), 15.0)
        await wait_for(lambda: factory.pin(23).state is False)
        assert journalled_markers(markers) == [("start", run), ("stop", run)]
        assert f"ok stop {run} " in panel.status()["last_reply"]
        # a benchmark's run is open: the LED shows it, a press is refused (busy), counted
        reply = await asyncio.to_thread(send_marker, "start", "bench-1", to=f"127.0.0.1:{port}")
        assert reply.ok
        await wait_for(lambda: factory.pin(23).state is True)
        await asyncio.sleep(0.06)
        factory.pin(24).drive_low()
        factory.pin(24).drive_high()
        await wait_for(lambda: panel.errors["refused"] == 1)
        assert open_runs(markers) == ["bench-1"]
        assert "busy" in panel.status()["last_reply"]
        assert markers.status()["counters"]["busy"] == 1
    finally:
        await panel.stop()
    assert not panel.status()["open"]


async def test_busy_pin_is_counted_and_the_panel_retries(factory: MockFactory) -> None:
    squatter = DigitalInputDevice(24)
    sent: list[tuple[str, str]] = []

    async def send(verb: str, name: str) -> tuple[bool, str]:
        sent.append((verb, name))
        return True, f"ok {verb} {name}"

    panel = GpioPanel(GpioConfig(status_led_pin=23, button_pin=24), runs_open=list,
                      send=send, spawn=spawn, retry_s=0.02, refresh_s=0.02)
    await panel.start()
    try:
        await wait_for(lambda: panel.errors["pin_error"] >= 2)
        assert not panel.status()["open"]
        squatter.close()
        await wait_for(lambda: panel.status()["open"])
    finally:
        await panel.stop()
    assert not panel.status()["open"]
    assert sent == []
