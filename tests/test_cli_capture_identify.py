"""Capture a polled chip over a real pty, then identify and replay the capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattd.cli.main import main
from wattd.simulator.meter import start_simulated_meter


@pytest.mark.parametrize(("driver", "address"), [("bl0942", 3), ("bl0940", 0), ("hlw8032", 0)])
def test_capture_identify_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 driver: str, address: int) -> None:
    sim = start_simulated_meter(driver, power_w=75.0, address=address, seed=5,
                                link_path=tmp_path / "tty")
    capture = tmp_path / "cap.jsonl"
    try:
        assert main(["capture", sim.port_path, "-o", str(capture), "--driver", driver,
                     "--address", str(address), "--poll-interval", "0.15",
                     "--seconds", "1.2"]) == 0
    finally:
        sim.stop()
    capsys.readouterr()
    assert main(["identify", str(capture), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best"] == driver
    best = report["candidates"][0]
    assert best["checksum_hit_rate"] == 1.0
    assert best["median_power_w"] == pytest.approx(75.0, rel=1e-3)
    if driver == "bl0942":
        assert best["settings"] == {"address": 3}
    replay = ["replay", str(capture), "--driver", driver, "--format", "summary",
              "--address", str(address)]
    assert main(replay) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["driver"] == driver
    assert summary["frames_ok"] >= 5
