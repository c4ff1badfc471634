"""wattd calibrate against simulated meters with deliberately wrong calibration,
and the pure derivation for every driver family."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wattd.cli.main import main
from wattd.protocols.calibration import CalibrationError, Measured, derive
from wattd.simulator.meter import start_simulated_meter


def test_derive_hlw_kv_then_ki() -> None:
    out = derive("hlw8032", {"kv": 2.0, "ki": 1.2}, Measured(power_w=127.66, voltage_v=244.68),
                 reference_w=100.0, reference_v=230.0)
    # true V = raw x 1.88, true P = raw x 1.88 x 1.0
    assert out.calibration["kv"] == pytest.approx(1.88, rel=1e-3)
    assert out.calibration["ki"] == pytest.approx(1.0, rel=1e-3)


def test_derive_bl0942_negative_power_gives_negative_reference() -> None:
    refs = {"voltage_reference": 15873.36, "current_reference": 251213.46,
            "power_reference": 596.0, "energy_reference": 3304.61}
    out = derive("bl0942", refs, Measured(power_w=-44.0, voltage_v=224.0, current_a=0.196),
                 reference_w=44.0)
    assert out.calibration["power_reference"] == pytest.approx(-596.0)
    assert out.calibration["energy_reference"] == pytest.approx(3304.61)  # too few counts
    long_run = Measured(power_w=-44.0, voltage_v=224.0, current_a=0.196,
                        counter_energy_j=44.0 * 3600 * 1.02, duration_s=3600.0)
    recal = derive("bl0942", refs, long_run, reference_w=44.0)
    assert recal.calibration["energy_reference"] == pytest.approx(3304.61 * 1.02)
    assert out.calibration["current_reference"] == pytest.approx(251213.46 * 0.196 / (44 / 224))
    assert any("other way" in note for note in out.notes)


def test_derive_pulse_keys() -> None:
    measured = Measured(power_w=50.0)
    assert derive("pulse", {}, measured, reference_w=60.0,
                  pulse_keys={"watts_per_hz": 10.0}).meter_keys == {"watts_per_hz": 12.0}
    assert derive("pulse", {}, measured, reference_w=60.0,
                  pulse_keys={"pulses_per_kwh": 1200.0}).meter_keys == {"pulses_per_kwh": 1000.0}
    with pytest.raises(CalibrationError):
        derive("pulse", {}, Measured(power_w=0.0), reference_w=60.0,
               pulse_keys={"watts_per_hz": 10.0})


def write_config(tmp_path: Path, driver: str, port: str, calibration: dict[str, float],
                 address: int = 0) -> Path:
    cfg = {"meters": [{"name": "plug", "driver": driver, "port": port, "address": address,
                       "poll_interval_s": 0.1, "calibration": calibration}],
           "journal": {"dir": str(tmp_path / "journal")}}
    path = tmp_path / "wattd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def pasted_block(out: str) -> dict[str, object]:
    lines = [line[4:] for line in out.splitlines() if not line.startswith("#")]
    block = yaml.safe_load("\n".join(lines))
    assert isinstance(block, dict)
    return block


@pytest.mark.parametrize(("driver", "wrong", "expected"), [
    ("hlw8032", {"kv": 2.0, "ki": 1.25}, {"kv": 1.88, "ki": 1.0}),
    ("bl0942", {"power_reference": 650.0, "voltage_reference": 16500.0},
     {"power_reference": 596.0, "voltage_reference": 15873.36, "energy_reference": 3304.61}),
])
def test_calibrate_a_live_simulated_meter(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          driver: str, wrong: dict[str, float],
                                          expected: dict[str, float]) -> None:
    # The simulated board is the real one (default coefficients, 230 V, 120 W).
    sim = start_simulated_meter(driver, power_w=120.0, seed=8, address=1 if driver == "bl0942"
                                else 0, link_path=tmp_path / "tty")
    try:
        config = write_config(tmp_path, driver, sim.port_path, wrong,
                              address=1 if driver == "bl0942" else 0)
        code = main(["calibrate", "-c", str(config), "--meter", "plug", "--reference-watts",
                     "120", "--reference-volts", "230", "--seconds", "1.2"])
    finally:
        sim.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    calibration = pasted_block(out)["calibration"]
    assert isinstance(calibration, dict)
    for key, value in expected.items():
        assert calibration[key] == pytest.approx(value, rel=0.005), key


def test_calibrate_unknown_meter_and_silent_port(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "bl0942", str(tmp_path / "no-such-tty"), {})
    assert main(["calibrate", "-c", str(config), "--meter", "nope",
                 "--reference-watts", "100"]) == 2
    assert main(["calibrate", "-c", str(config), "--meter", "plug", "--reference-watts", "100",
                 "--seconds", "0.3"]) == 1
    assert "only 0 reading" in capsys.readouterr().err
