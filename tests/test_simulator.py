"""Simulated chip: faithful low-load behaviour, PF wrap, profiles, and the pty server."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest

from wattd.errors import ConfigError
from wattd.protocols.base import Measurement
from wattd.protocols.hlw8032 import HLW8032Decoder
from wattd.protocols.registry import get_driver
from wattd.simulator.chip_hlw8032 import FRAME_INTERVAL_S, ChipModel
from wattd.simulator.meter import start_simulated_meter
from wattd.simulator.power_profile import ConstantPower, PowerProfile

NS = 1_000_000_000


def run_chip(chip: ChipModel, seconds: float, decoder: HLW8032Decoder | None = None
             ) -> tuple[list[bytes], list[Measurement]]:
    decoder = decoder or HLW8032Decoder("cse7766")
    frames, ms = [], []
    for i in range(round(seconds / FRAME_INTERVAL_S)):
        t = i * FRAME_INTERVAL_S
        f = chip.frame_at(t)
        frames.append(f)
        for e in decoder.feed(f, round(t * NS)):
            assert isinstance(e, Measurement), e
            ms.append(e)
    return frames, ms


def longest_run_without_power_bit(frames: list[bytes]) -> int:
    best = run = 0
    for f in frames:
        run = 0 if f[20] & 0x10 else run + 1
        best = max(best, run)
    return best


def test_100w_every_frame_refreshes_power() -> None:
    chip = ChipModel(ConstantPower(100.0), seed=1)
    frames, ms = run_chip(chip, 30)
    assert longest_run_without_power_bit(frames) == 0
    assert all(m.power_w == pytest.approx(100.0, rel=0.01) for m in ms)
    assert all(m.voltage_v == pytest.approx(230.0, abs=2.0) for m in ms)
    assert ms[-1].current_a == pytest.approx(100.0 / (230 * 0.95), rel=0.02)
    # Energy from the PF counter tracks the true energy to within one pulse.
    assert ms[-1].energy_j == pytest.approx(chip.energy_j, abs=2 * chip.joules_per_pulse)


def test_3w_long_runs_without_refresh_and_power_stays_near_3w() -> None:
    chip = ChipModel(ConstantPower(3.0), seed=2)
    frames, ms = run_chip(chip, 120)
    assert chip.joules_per_pulse / 3.0 == pytest.approx(1.78, abs=0.01)  # pulse period, s
    assert longest_run_without_power_bit(frames) >= 15
    powers = [m.power_w for m in ms]
    assert None not in powers
    mean = sum(powers) / len(powers)  # type: ignore[arg-type]
    assert mean == pytest.approx(3.0, rel=0.03)
    assert min(powers) > 2.7  # type: ignore[type-var]
    assert ms[-1].energy_j == pytest.approx(chip.energy_j, abs=2 * chip.joules_per_pulse)


def test_hlw8032_coefficients_round_trip_through_the_registry() -> None:
    spec = get_driver("gb202")
    chip = ChipModel(ConstantPower(42.0), kv=1.88, ki=1.0, seed=3)
    decoder = spec.make_decoder()
    _, ms = run_chip(chip, 5, decoder)  # type: ignore[arg-type]
    assert ms[-1].power_w == pytest.approx(42.0, rel=0.01)
    assert ms[-1].voltage_v == pytest.approx(230.0, abs=2.0)


def test_pf_counter_wraps_with_toggle_and_energy_stays_continuous() -> None:
    chip = ChipModel(ConstantPower(2000.0), pf_start=65_500, seed=4)
    frames, ms = run_chip(chip, 2)
    counts = [int.from_bytes(f[21:23], "big") for f in frames]
    assert counts[0] > 65_000
    assert counts[-1] < 1000
    assert frames[0][20] & 0x80 == 0
    assert frames[-1][20] & 0x80 == 0x80
    assert ms[-1].energy_j == pytest.approx(chip.energy_j, abs=2 * chip.joules_per_pulse)


def test_profile_steps_down_decays_then_settles_never_zero() -> None:
    profile = PowerProfile.parse("# t_s,power_w\n0,100\n5,3\n30,loop\n")
    assert profile.power_at(31) == 100
    assert profile.power_at(6) == 3
    chip = ChipModel(profile, seed=5)
    _, ms = run_chip(chip, 25)
    after = [m for m in ms if m.t_ns > 5 * NS]
    assert all(m.power_w is not None and m.power_w > 0 for m in after)
    assert after[-1].power_w == pytest.approx(3.0, rel=0.03)
    # On the way down the reading falls below 100 W before the first 3 W refresh.
    assert min(m.power_w for m in after[:20]) < 50  # type: ignore[type-var]


def test_no_power_becomes_no_load_after_the_preg_range() -> None:
    chip = ChipModel(PowerProfile.parse("0,10\n1,0"), seed=6)
    _, ms = run_chip(chip, 20)
    assert ms[-1].status == "no_load"
    assert ms[-1].power_w == 0.0
    decaying = [m for m in ms if m.status == "ok" and m.t_ns > 3 * NS]
    assert decaying
    assert all(m.power_w and m.power_w > 0 for m in decaying)


@pytest.mark.parametrize("text", ["5,3", "0,3\n0,4", "0,x", "0,3\n2,loop\n3,4", "0,-1", ""])
def test_bad_profiles_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        PowerProfile.parse(text, "p.csv")


def read_for(path: str, seconds: float) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    out = b""
    try:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if select.select([fd], [], [], left)[0]:
                out += os.read(fd, 4096)
    finally:
        os.close(fd)
    return out


def test_pty_server_serves_decodable_frames_and_replugs(tmp_path: Path) -> None:
    link = tmp_path / "ttyMeter"
    sim = start_simulated_meter("cse7766", power_w=100.0, link_path=link, seed=7)
    try:
        assert os.path.islink(link)
        first_target = os.readlink(link)
        data = read_for(str(link), 0.6)
        decoder = HLW8032Decoder("cse7766")
        ms = [e for e in decoder.feed(data, 0) if isinstance(e, Measurement)]
        assert len(ms) >= 2
        assert ms[-1].power_w == pytest.approx(100.0, rel=0.01)
        sim.unplug()
        assert not os.path.lexists(link)
        sim.replug()
        assert os.path.islink(link)
        assert os.readlink(link) != first_target or os.path.exists(link)
        assert len(read_for(str(link), 0.4)) >= 24
    finally:
        sim.stop()
    assert not os.path.lexists(link)


def test_own_temp_dir_is_removed_on_stop() -> None:
    sim = start_simulated_meter("gb202", power_w=5.0)
    path = Path(sim.port_path)
    assert path.is_symlink()
    sim.stop()
    assert not path.parent.exists()
