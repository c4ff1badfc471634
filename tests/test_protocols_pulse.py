"""Pure pulse core: interval -> power, count -> energy, the SPEC 1.3 cap, bounces, CF1."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattd.protocols.pulse import NS, Cf1Meter, PulsePower, joules_per_pulse


def test_joules_per_pulse_from_each_setting() -> None:
    assert joules_per_pulse(joules_per_pulse=2.5) == 2.5
    assert joules_per_pulse(pulses_per_kwh=1000) == 3600.0
    assert joules_per_pulse(watts_per_hz=12.5) == 12.5
    with pytest.raises(ValueError, match="exactly one"):
        joules_per_pulse(pulses_per_kwh=1000, watts_per_hz=1)
    with pytest.raises(ValueError, match="> 0"):
        joules_per_pulse(pulses_per_kwh=0)


def test_steady_train_gives_exact_power_and_energy() -> None:
    core = PulsePower(12.5)  # 12.5 W per Hz
    for k in range(81):  # 8 Hz for 10 s = 100 W
        core.pulse(k * NS // 8)
    sample = core.sample(10 * NS)
    assert sample.power_w == pytest.approx(100.0)
    assert sample.energy_j == 81 * 12.5
    assert not sample.capped


def test_no_power_before_the_first_interval() -> None:
    core = PulsePower(3600.0)
    assert core.sample(NS).power_w is None
    core.pulse(2 * NS)
    assert core.sample(600 * NS).power_w is None
    core.pulse(1202 * NS)
    assert core.sample(1203 * NS).power_w == pytest.approx(3.0)


def test_cap_decays_as_one_over_silence_and_never_reaches_zero() -> None:
    core = PulsePower(3600.0)  # 1000 imp/kWh LED
    core.pulse(0)
    core.pulse(1200 * NS)  # 3 W
    assert core.sample(1800 * NS).power_w == pytest.approx(3.0)  # within one period: hold
    assert core.sample(2400 * NS).power_w == pytest.approx(3.0)
    later = core.sample(3000 * NS)  # 1800 s of silence: at most 3600 J / 1800 s
    assert later.capped
    assert later.power_w == pytest.approx(2.0)
    much_later = core.sample(1200 * NS + 36_000 * NS)
    assert much_later.power_w == pytest.approx(0.1)
    assert much_later.power_w > 0


def test_estimates_tile_time_and_integrate_to_the_count() -> None:
    core = PulsePower(1.0)
    t, energy, last_pulse = 0, 0.0, 0
    times = [int(i * 0.137 * NS + (i % 7) * 3_000_000) for i in range(200)]
    for t in times:
        core.pulse(t)
    # one sample per pulse window is exact: sum(power x window) == intervals x quantum
    core2 = PulsePower(1.0)
    core2.pulse(times[0])
    last_pulse = times[0]
    for i, t in enumerate(times[1:], 1):
        core2.pulse(t)
        if i % 5 == 0:
            sample = core2.sample(t)
            assert sample.power_w is not None
            energy += sample.power_w * (t - last_pulse) / NS
            last_pulse = t
    assert energy == pytest.approx((len(times) - 1) // 5 * 5 * 1.0)
    assert core.energy_j == len(times)


def test_debounce_rejects_and_counts_bounces() -> None:
    core = PulsePower(1.0, debounce_ns=5_000_000)
    for k in range(11):
        t = k * NS // 10
        for bounce_ns in (0, 400_000, 1_300_000, 2_900_000):
            core.pulse(t + bounce_ns)
    assert core.pulses == 11
    assert core.bounces == 33
    assert core.sample(NS).power_w == pytest.approx(10.0)


def test_out_of_order_edge_is_rejected() -> None:
    core = PulsePower(1.0)
    assert core.pulse(10)
    assert not core.pulse(5)
    assert core.out_of_order == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10 * NS), max_size=60), st.integers(0, 20 * NS))
def test_any_edges_any_time_power_is_finite_non_negative(edges: list[int], at: int) -> None:
    core = PulsePower(3.6, debounce_ns=1_000_000)
    for t in sorted(edges):
        core.pulse(t)
    sample = core.sample(at)
    assert sample.power_w is None or sample.power_w >= 0
    assert sample.energy_j == core.pulses * 3.6


def test_cf1_current_and_voltage_windows() -> None:
    cf1 = Cf1Meter(amps_per_hz=0.01, volts_per_hz=0.5)
    for k in range(101):  # 50 Hz for 2 s -> 0.5 A (first pulse only anchors)
        cf1.pulse(k * NS // 50)
    cf1.select("voltage")
    assert cf1.current_a == pytest.approx(0.5)
    for k in range(921):  # 460 Hz -> 230 V
        cf1.pulse(2 * NS + k * NS // 460)
    cf1.select("current")
    assert cf1.voltage_v == pytest.approx(230.0, rel=1e-3)
    cf1.select("voltage")  # a current window without pulses: no current
    assert cf1.current_a == 0.0
