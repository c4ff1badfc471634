"""wattd capture polls the MCP39F511N and UM simulators on a pty like the daemon
does, and wattd identify names them from the capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattd.cli.main import main
from wattd.simulator.meter import start_simulated_meter


@pytest.mark.parametrize(("driver", "power_w"), [("mcp39f511n", 33.3), ("um", 2.9)])
def test_capture_then_identify(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               driver: str, power_w: float) -> None:
    sim = start_simulated_meter(driver, power_w=power_w, link_path=tmp_path / "tty")
    capture = tmp_path / "cap.jsonl"
    try:
        assert main(["capture", sim.port_path, "-o", str(capture), "--driver", driver,
                     "--seconds", "2.5", "--poll-interval", "0.5"]) == 0
    finally:
        sim.stop()
    capsys.readouterr()
    assert main(["identify", str(capture), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["best"] == driver
    best = result["candidates"][0]
    assert best["median_power_w"] == pytest.approx(power_w, rel=1e-3)
