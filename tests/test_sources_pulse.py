"""The pulse driver on gpiozero's own MockFactory: known pulse trains, a slow
LED decaying, bouncing edges, CF1/SEL, and a pin already in use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from gpiozero import Device, DigitalInputDevice
from gpiozero.pins.mock import MockFactory

from wattd.config import MeterConfig
from wattd.protocols.pulse import NS
from wattd.readings import Reading
from wattd.sources.pulse_source import PulseSource

REALTIME_OFFSET_NS = 1_700_000_000 * NS


class FakeClock:
    """An injectable clock that only moves when told to."""

    def __init__(self) -> None:
        self.boot_ns = 1_000 * NS

    def boottime_ns(self) -> int:
        return self.boot_ns

    def realtime_ns(self) -> int:
        return self.boot_ns + REALTIME_OFFSET_NS


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = mock
    yield mock
    mock.close()
    Device.pin_factory = previous


def make(cfg: MeterConfig, clock: FakeClock) -> tuple[PulseSource, list[Reading]]:
    readings: list[Reading] = []
    return PulseSource(cfg, on_reading=readings.append, clock=clock), readings


def pulse(factory: MockFactory, pin: int, clock: FakeClock, t_ns: int) -> None:
    clock.boot_ns = t_ns
    factory.pin(pin).drive_low()  # the opto pulls the pin low: activated
    factory.pin(pin).drive_high()


@pytest.mark.parametrize(("hz", "watts_per_hz"), [(8.0, 12.5), (53.0, 1.9), (0.7, 12.5)])
def test_pulse_train_of_known_frequency(factory: MockFactory, hz: float,
                                        watts_per_hz: float) -> None:
    clock = FakeClock()
    source, readings = make(MeterConfig(name="cf", driver="pulse", pin=17,
                                        watts_per_hz=watts_per_hz, tags={"rack": "a"}), clock)
    assert source.open()
    t0 = clock.boot_ns
    period_ns = NS / hz
    next_tick = t0 + NS
    for k in range(int(hz * 20) + 1):
        t = t0 + int(k * period_ns) + (1_000_000 if k % 3 == 1 else 0)  # 1 ms callback jitter
        while next_tick <= t:
            clock.boot_ns = next_tick
            source.tick()
            next_tick += NS
        pulse(factory, 17, clock, t)
    expected = hz * watts_per_hz
    settled = [r for r in readings if r.t_boot_ns > t0 + 3 * NS]
    assert len(settled) >= 15
    for r in settled:
        assert r.power_w == pytest.approx(expected, rel=0.005)
        assert r.meter == "cf"
        assert r.tags == {"rack": "a"}
        assert r.t_ns == r.t_boot_ns + REALTIME_OFFSET_NS
    clock.boot_ns += 1
    last = source.tick()
    assert last is not None
    assert last.energy_j == pytest.approx((int(hz * 20) + 1) * watts_per_hz)
    source.close()


def test_slow_led_decays_with_the_cap_rule(factory: MockFactory) -> None:
    clock = FakeClock()
    source, _readings = make(MeterConfig(name="led", driver="pulse", pin=5,
                                        pulses_per_kwh=1000), clock)
    assert source.open()
    t0 = clock.boot_ns
    # 3 W: one pulse every 1200 s; then the load drops to 1 W (3600 s per pulse).
    pulses = [t0, t0 + 1200 * NS, t0 + 2400 * NS, t0 + 6000 * NS]
    powers: dict[int, float] = {}
    for minute in range(101):
        t = t0 + minute * 60 * NS
        for p in [p for p in pulses if p <= t]:
            pulses.remove(p)
            pulse(factory, 5, clock, p)
        clock.boot_ns = t
        reading = source.tick()
        if reading is not None:
            assert reading.power_w is not None
            powers[minute] = reading.power_w
    assert 19 not in powers  # no power before the first interval
    assert powers[20] == pytest.approx(3.0)
    assert powers[40] == pytest.approx(3.0)
    assert powers[55] == pytest.approx(3.0)  # 15 min of silence < one 3 W period: hold
    assert powers[70] == pytest.approx(3600 / (30 * 60))  # 2.0 W: capped, not 0, not 3
    assert powers[99] == pytest.approx(3600 / (59 * 60))
    assert powers[100] == pytest.approx(1.0)  # the pulse at 6000 s: 3600 J in 3600 s
    decaying = [powers[m] for m in range(60, 100)]
    assert decaying == sorted(decaying, reverse=True)
    assert min(decaying) > 0


def test_bouncing_edges_are_debounced_and_counted(factory: MockFactory) -> None:
    clock = FakeClock()
    source, _readings = make(MeterConfig(name="b", driver="pulse", pin=6, watts_per_hz=2.0,
                                        debounce_ms=5), clock)
    assert source.open()
    t0 = clock.boot_ns
    for k in range(41):  # 20 Hz -> 40 W, each edge bouncing 3 times within 3 ms
        for bounce_ns in (0, 700_000, 1_500_000, 2_800_000):
            pulse(factory, 6, clock, t0 + k * NS // 20 + bounce_ns)
    clock.boot_ns = t0 + 2 * NS
    reading = source.tick()
    assert reading is not None
    assert reading.power_w == pytest.approx(40.0, rel=0.005)
    assert source.status()["bounces"] == 41 * 3
    assert source.power.pulses == 41


def test_cf1_sel_current_and_voltage(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = MeterConfig(name="hlw", driver="pulse", pin=17, cf1_pin=27, sel_pin=22,
                      sel_current_high=False, watts_per_hz=10.0,
                      calibration={"amps_per_hz": 0.01, "volts_per_hz": 0.5})
    source, _readings = make(cfg, clock)
    assert source.open()
    assert factory.pin(22).state is False  # current mode, selected by SEL low on this board
    t0 = clock.boot_ns
    for k in range(2 * 50 + 1):  # 50 Hz on CF1 for 2 s: 0.5 A
        pulse(factory, 27, clock, t0 + k * NS // 50)
    for k in range(2 * 23 + 1):  # 23 Hz on CF: 230 W
        pulse(factory, 17, clock, t0 + k * NS // 23)
    clock.boot_ns = t0 + 2 * NS + 1
    source.tick()
    assert factory.pin(22).state is True  # switched to voltage
    for k in range(2 * 460 + 1):  # 460 Hz on CF1: 230 V
        pulse(factory, 27, clock, t0 + 2 * NS + 10_000_000 + k * NS // 460)
    clock.boot_ns = t0 + 4 * NS + 20_000_000
    reading = source.tick()
    assert reading is not None
    assert reading.current_a == pytest.approx(0.5, rel=0.005)
    assert reading.voltage_v == pytest.approx(230.0, rel=0.005)
    assert reading.apparent_va == pytest.approx(115.0, rel=0.01)
    assert reading.power_factor is not None
    assert factory.pin(22).state is False


async def test_pin_in_use_is_a_counted_error_and_retried(factory: MockFactory) -> None:
    squatter = DigitalInputDevice(13)
    readings: list[Reading] = []
    source = PulseSource(MeterConfig(name="busy", driver="pulse", pin=13, watts_per_hz=1.0),
                         on_reading=readings.append, retry_s=0.01, sample_interval_s=0.01)
    task = asyncio.create_task(source.run())
    for _ in range(500):
        if source.errors["pin_error"] >= 2:
            break
        await asyncio.sleep(0.005)
    assert source.errors["pin_error"] >= 2
    assert "in use" in source.status()["last_error"]
    assert not source.is_open
    squatter.close()
    for _ in range(500):
        if source.is_open:
            break
        await asyncio.sleep(0.005)
    assert source.is_open
    for _ in range(3):  # pulses now reach the source: it produces readings on its own
        factory.pin(13).drive_low()
        factory.pin(13).drive_high()
        await asyncio.sleep(0.02)
    for _ in range(500):
        if readings:
            break
        await asyncio.sleep(0.005)
    assert readings
    await source.stop()
    await asyncio.wait_for(task, 5)
    assert not source.is_open
