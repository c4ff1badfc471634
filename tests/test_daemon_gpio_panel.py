"""The daemon starts the optional GPIO panel: the button opens and closes a
manual run over the daemon's own UDP markers, the LED follows the open run.
gpiozero's own MockFactory stands in for the Pi's pins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from tests.journal_helpers import until
from tests.ports import free_port
from wattd.config import load_config_text
from wattd.daemon.app import Daemon


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    old = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = old


def _free_udp_port() -> int:
    return free_port("udp")


async def test_button_starts_and_stops_a_run_and_led_follows(tmp_path: Path,
                                                             mock_pins: MockFactory) -> None:
    port = _free_udp_port()
    cfg = load_config_text(
        f"meters: [{{name: pi, driver: simulated, power_w: 20}}]\n"
        f"markers: {{listen: ['127.0.0.1:{port}']}}\n"
        f"journal: {{dir: {tmp_path / 'j'}}}\n"
        f"gpio: {{status_led_pin: 18, button_pin: 23}}\n", environ={})
    daemon = Daemon(cfg, simulate=True)
    assert daemon.gpio_panel is not None
    task = asyncio.create_task(daemon.run())
    try:
        led = mock_pins.pin(18)
        button = mock_pins.pin(23)
        await until(lambda: daemon.pipeline.readings_in >= 5, 15.0, 0.05)
        assert led.state in (0, False)
        button.drive_low()  # pressed (pull-up)
        await asyncio.sleep(0.1)
        button.drive_high()
        await until(lambda: daemon.markers.engine.open_runs() != [], 15.0, 0.05)
        run = daemon.markers.engine.open_runs()[0]["run"]
        assert run.startswith("manual-")
        await until(lambda: led.state in (1, True), 15.0, 0.05)
        await asyncio.sleep(0.6)
        button.drive_low()
        await asyncio.sleep(0.1)
        button.drive_high()
        await until(lambda: daemon.markers.engine.open_runs() == [], 15.0, 0.05)
        await until(lambda: led.state in (0, False), 15.0, 0.05)
        assert daemon.status()["gpio"]["presses"] == 2
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 20)
    journal = "".join(p.read_text() for p in sorted((tmp_path / "j").glob("*.lp")))
    assert f"wattd_run,meter=pi,run={run} " in journal
