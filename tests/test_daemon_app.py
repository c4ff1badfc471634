"""The composition root in process: the daemon's status is its components' status, and
a component that cannot start stops the daemon cleanly (the ones started before it are
stopped, in reverse, the others never start) with the component's error."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tests.ports import free_port
from wattd.config import Config, load_config_text
from wattd.daemon.app import Daemon
from wattd.errors import ConfigError
from wattd.journal.reader import iter_lines


def _config(tmp_path: Path, port: int) -> Config:
    return load_config_text(
        f"meters: [{{name: pi, driver: simulated, power_w: 20}}]\n"
        f"markers: {{listen: ['127.0.0.1:{port}']}}\n"
        f"journal: {{dir: {tmp_path / 'j'}}}\n", environ={})


async def test_status_is_built_from_the_components(tmp_path: Path) -> None:
    daemon = Daemon(_config(tmp_path, free_port("udp")), simulate=True)
    assert [name for name, _ in daemon.components] == [
        "journal", "pipeline", "clock", "markers", "meters", "power_log", "service"]
    task = asyncio.create_task(daemon.run())
    try:
        while daemon.pipeline.readings_written < 3:
            assert not task.done()
            await asyncio.sleep(0.05)
        status = daemon.status()
        assert set(status) == {name for name, _ in daemon.components} | {"process"}
        assert status["pipeline"]["readings_written"] >= 3  # type: ignore[index]
        assert status["journal"]["dir"] == str(tmp_path / "j")  # type: ignore[index]
        assert status["clock"]["gate"]["holding"] is False  # type: ignore[index]
        assert status["markers"]["open_runs"] == []  # type: ignore[index]
        assert status["meters"]["pi"]["readings"] >= 3  # type: ignore[index]
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 20) == 0


async def test_a_component_that_cannot_start_stops_the_daemon(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        cfg = _config(tmp_path, squatter.getsockname()[1])
        daemon = Daemon(cfg, simulate=True)
        with pytest.raises(ConfigError, match="cannot listen"):
            await asyncio.wait_for(daemon.run(), 20)
    # started before the markers: stopped (the journal is closed, so readable whole)
    assert daemon.pipeline.writer is not None
    assert daemon.pipeline.writer.done()
    assert list(iter_lines(cfg.journal.dir)) == []
    # after the markers: never started
    assert daemon.meters.sources == {}
    assert daemon.meters.simulators == {}
    assert daemon.service.ready_sent is False
    assert daemon.tasks == {}
