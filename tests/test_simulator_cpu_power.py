"""The CPU-following simulated load (SPEC 9.5)."""

from __future__ import annotations

import pytest

from wattd.config import load_config_text
from wattd.errors import ConfigError
from wattd.simulator.cpu_power import CpuFollowingPower
from wattd.simulator.meter import make_chip, power_source


def test_formula_over_the_last_period() -> None:
    ticks = iter([(100, 1000), (150, 1100), (150, 1200), (250, 1300)])
    power = CpuFollowingPower(2.0, 5.0, min_period_s=0.1, read_ticks=lambda: next(ticks))
    assert power.power_at(0.0) == 2.0  # no period yet: idle
    assert power.power_at(0.05) == 2.0  # same period: no new read
    assert power.power_at(0.2) == pytest.approx(2.0 + 3.0 * 0.5)  # 50 of 100 ticks busy
    assert power.power_at(0.4) == 2.0  # nothing busy
    assert power.power_at(0.6) == 5.0  # all busy


def test_real_proc_stat_and_chip() -> None:
    power = power_source(power_model="cpu", idle_w=1.0, busy_w=9.0)
    assert isinstance(power, CpuFollowingPower)
    values = [power.power_at(t / 10) for t in range(5)]
    assert all(1.0 <= v <= 9.0 for v in values)
    chip = make_chip("gb202", power_model="cpu")
    frame = chip.frame_at(0.0)  # type: ignore[union-attr]
    assert len(frame) == 24


def test_config_keys() -> None:
    cfg = load_config_text("meters: [{name: sim, driver: simulated, power_model: cpu}]\n")
    meter = cfg.meters[0]
    assert (meter.power_model, meter.idle_w, meter.busy_w) == ("cpu", 2.0, 5.0)
    with pytest.raises(ConfigError, match="busy_w"):
        load_config_text("meters: [{name: s, driver: simulated, power_model: cpu, "
                         "idle_w: 6, busy_w: 5}]\n")
    with pytest.raises(ConfigError, match="power_model"):
        load_config_text("meters: [{name: s, driver: simulated, power_model: gpu}]\n")
