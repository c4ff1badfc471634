"""GPIO panel on gpiozero's MockFactory: LED follows open runs, the button starts and
stops a manual run through real UDP markers, a busy pin is a counted error."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
from gpiozero import Device, DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from wattd.config import GpioConfig, MarkersConfig
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


class FakeDaemon:
    """A marker endpoint on a real loopback UDP socket: keeps open runs, replies ok/busy."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.open: list[str] = []
        self.received: list[str] = []

    def on_datagram(self) -> None:
        data, addr = self.sock.recvfrom(2048)
        words = data.decode().split()
        self.received.append(data.decode())
        verb, name = words[0], words[1]
        msg_id = next(w for w in words if w.startswith("id="))
        if verb == "start" and self.open:
            reply = f"error busy run {self.open[0]} is open {msg_id}"
        else:
            if verb == "start":
                self.open.append(name)
            elif name in self.open:
                self.open.remove(name)
            reply = f"ok {verb} {name} {msg_id}"
        self.sock.sendto(reply.encode(), addr)


async def test_button_starts_and_stops_a_manual_run_over_udp(factory: MockFactory) -> None:
    daemon = FakeDaemon()
    loop = asyncio.get_running_loop()
    loop.add_reader(daemon.sock.fileno(), daemon.on_datagram)
    markers = MarkersConfig(listen=[f"0.0.0.0:{daemon.port}"])
    panel = GpioPanel(GpioConfig(status_led_pin=23, button_pin=24),
                      runs_open=lambda: list(daemon.open), send=udp_sender(markers),
                      refresh_s=0.02)
    task = asyncio.create_task(panel.run())
    try:
        await wait_for(lambda: panel.status()["open"])
        assert factory.pin(23).state is False
        factory.pin(24).drive_low()  # press
        factory.pin(24).drive_high()
        await wait_for(lambda: panel.manual_run is not None)
        assert daemon.open == [panel.manual_run]
        await wait_for(lambda: factory.pin(23).state is True)
        assert daemon.received[0].startswith("start manual-")
        await asyncio.sleep(0.06)  # past the button's 50 ms bounce time
        factory.pin(24).drive_low()  # press again: stop
        factory.pin(24).drive_high()
        await wait_for(lambda: panel.manual_run is None and not daemon.open)
        await wait_for(lambda: factory.pin(23).state is False)
        assert daemon.received[-1].startswith("stop manual-")
        # a benchmark's run is open: the LED shows it, a press is refused (busy), counted
        daemon.open.append("bench-1")
        await wait_for(lambda: factory.pin(23).state is True)
        await asyncio.sleep(0.06)
        factory.pin(24).drive_low()
        factory.pin(24).drive_high()
        await wait_for(lambda: panel.errors["refused"] == 1)
        assert daemon.open == ["bench-1"]
        assert "busy" in panel.status()["last_reply"]
    finally:
        await panel.stop()
        await asyncio.wait_for(task, 5)
        loop.remove_reader(daemon.sock.fileno())
        daemon.sock.close()
    assert not panel.status()["open"]


async def test_busy_pin_is_counted_and_the_panel_retries(factory: MockFactory) -> None:
    squatter = DigitalInputDevice(24)
    sent: list[tuple[str, str]] = []

    async def send(verb: str, name: str) -> tuple[bool, str]:
        sent.append((verb, name))
        return True, f"ok {verb} {name}"

    panel = GpioPanel(GpioConfig(status_led_pin=23, button_pin=24), runs_open=list,
                      send=send, retry_s=0.02, refresh_s=0.02)
    task = asyncio.create_task(panel.run())
    try:
        await wait_for(lambda: panel.errors["pin_error"] >= 2)
        assert not panel.status()["open"]
        squatter.close()
        await wait_for(lambda: panel.status()["open"])
    finally:
        await panel.stop()
        await asyncio.wait_for(task, 5)
    assert sent == []
