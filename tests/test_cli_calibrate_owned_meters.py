"""wattd calibrate with the SPEC 8 meters: the MCP39F511N's power unit is derived;
the meters with no coefficients (UM, hwmon, plugs) are checked against the reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wattd.cli.main import main
from wattd.protocols.calibration import Measured, derive
from wattd.protocols.mcp39f511n import SERIAL
from wattd.simulator.chip_polled import MCP39F511NChipModel
from wattd.simulator.plug_http import PlugModel, PlugServer
from wattd.simulator.power_profile import ConstantPower
from wattd.simulator.pty_server import PtyMeterServer


def _config(tmp_path: Path, meter: dict[str, object]) -> Path:
    path = tmp_path / "wattd.yaml"
    path.write_text(yaml.safe_dump({"meters": [{"name": "m", **meter}],
                                    "journal": {"dir": str(tmp_path / "j")}}))
    return path


def test_derive_mcp_power_unit_and_check_only_notes() -> None:
    out = derive("mcp39f511n", {"power_w_per_count": 0.011, "energy_j_per_count": 3.6},
                 Measured(power_w=110.0), reference_w=100.0)
    assert out.calibration["power_w_per_count"] == pytest.approx(0.01)
    assert out.calibration["energy_j_per_count"] == 3.6
    check = derive("shelly", {}, Measured(power_w=101.0, counter_energy_j=3600.0,
                                          duration_s=36.0), reference_w=100.0)
    assert check.calibration == {}
    assert any("+1.00%" in note for note in check.notes)
    assert any("100.000 W" in note for note in check.notes)


def test_calibrate_live_mcp_with_a_wrong_power_unit(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    sim = PtyMeterServer(MCP39F511NChipModel(ConstantPower(120.0)), SERIAL,
                         link_path=tmp_path / "acm").start()
    try:
        config = _config(tmp_path, {"driver": "mcp39f511n", "port": sim.port_path,
                                    "calibration": {"power_w_per_count": 0.0125}})
        code = main(["calibrate", "-c", str(config), "--meter", "m", "--reference-watts",
                     "120", "--seconds", "2"])
    finally:
        sim.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    block = yaml.safe_load("\n".join(line[4:] for line in out.splitlines()
                                     if not line.startswith("#")))
    assert block["calibration"]["power_w_per_count"] == pytest.approx(0.01, rel=1e-6)


def test_calibrate_checks_a_plug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = PlugServer(PlugModel("tasmota", ConstantPower(61.0), refresh_s=0.0)).start()
    try:
        config = _config(tmp_path, {"driver": "tasmota", "url": server.url,
                                    "poll_interval_s": 0.1})
        code = main(["calibrate", "-c", str(config), "--meter", "m", "--reference-watts",
                     "60", "--seconds", "2"])
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    assert "+1.67% against the reference" in out
    assert "# nothing to paste" in out
