"""Pulse outputs to power and energy (SPEC 1.3): pure, times in, values out.

A CF pin (HLW8012, BL0937, CSE7759) or a meter's energy LED seen through a
photodiode gives one pulse per fixed quantum of energy, ``joules_per_pulse``:

- energy is the pulse count times the quantum;
- power is the quantum divided by the time between pulses. Over one sample
  window the estimate is ``quantum x intervals / (last pulse - anchor)``,
  the anchor being the last pulse of the previous window, so consecutive
  windows tile time and the estimates integrate to exactly the counted
  energy (callback jitter averages out instead of adding up);
- while no pulse arrives the load may have dropped: at ``t`` the power is at
  most ``quantum / (t - last pulse)`` (otherwise another pulse would have
  come), so the reported power is capped there and decays toward 0 as the
  silence grows. No fixed timeout: a 1000 imp/kWh LED at 3 W pulses every
  20 minutes, and its power is 3 W all along.

Bouncing edges (a photodiode on a slow LED edge, a long wire) arrive within
``debounce_ns`` of the accepted edge: they are rejected and counted.

The CF1 pin gives current or voltage as a frequency, depending on SEL; the
source flips SEL now and then, and :class:`Cf1Meter` measures each window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NS = 1_000_000_000
J_PER_KWH = 3.6e6

# HLW8012 with the usual 1 mOhm shunt and 2351:1 voltage divider (ESPHome's
# defaults): 2.43 V reference, 3.579 MHz clock. BL0937 boards differ: calibrate.
HLW8012_AMPS_PER_HZ = 2.43 / 0.001 * 512 / 24 / 3_579_000
HLW8012_VOLTS_PER_HZ = 2.43 * 2351 * 256 / 3_579_000

Cf1Mode = Literal["current", "voltage"]


def joules_per_pulse(*, joules_per_pulse: float | None = None,
                     pulses_per_kwh: float | None = None,
                     watts_per_hz: float | None = None) -> float:
    """The energy of one pulse from whichever of the three settings is given.

    ``watts_per_hz``: P = f x k, so one pulse (1/f seconds of P) is k joules.
    ``pulses_per_kwh``: N impulses per kWh, one pulse = 3.6e6 / N joules.
    """
    given = [(name, value) for name, value in (("joules_per_pulse", joules_per_pulse),
                                               ("pulses_per_kwh", pulses_per_kwh),
                                               ("watts_per_hz", watts_per_hz))
             if value is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of joules_per_pulse, pulses_per_kwh, watts_per_hz")
    name, value = given[0]
    if not value > 0:
        raise ValueError(f"{name} must be > 0")
    if name == "pulses_per_kwh":
        return J_PER_KWH / value
    return value


@dataclass(slots=True, frozen=True)
class PulseSample:
    power_w: float | None  # None until two pulses have given one interval
    energy_j: float  # pulses counted since start x joules per pulse
    pulses: int
    capped: bool = False  # power limited by the silence since the last pulse


class PulsePower:
    """CF pulses to power and energy."""

    __slots__ = ("_anchor_ns", "_estimate_w", "_intervals", "_last_ns", "bounces",
                 "debounce_ns", "joules_per_pulse", "out_of_order", "pulses")

    def __init__(self, joules_per_pulse: float, *, debounce_ns: int = 0) -> None:
        if not joules_per_pulse > 0:
            raise ValueError("joules_per_pulse must be > 0")
        self.joules_per_pulse = joules_per_pulse
        self.debounce_ns = max(0, debounce_ns)
        self.pulses = 0
        self.bounces = 0
        self.out_of_order = 0
        self._last_ns: int | None = None
        self._anchor_ns: int | None = None  # last pulse of the previous estimate
        self._intervals = 0  # pulses after the anchor
        self._estimate_w: float | None = None

    @property
    def energy_j(self) -> float:
        return self.pulses * self.joules_per_pulse

    def pulse(self, t_ns: int) -> bool:
        """One edge at ``t_ns``; False (and counted) when rejected as a bounce."""
        last = self._last_ns
        if last is not None:
            if t_ns < last:
                self.out_of_order += 1
                return False
            if t_ns - last < self.debounce_ns:
                self.bounces += 1
                return False
        self.pulses += 1
        self._last_ns = t_ns
        if self._anchor_ns is None:
            self._anchor_ns = t_ns
        else:
            self._intervals += 1
        return True

    def sample(self, t_ns: int) -> PulseSample:
        """Power and energy at ``t_ns`` (closes the current estimate window)."""
        last, anchor = self._last_ns, self._anchor_ns
        if self._intervals and last is not None and anchor is not None and last > anchor:
            self._estimate_w = (self.joules_per_pulse * self._intervals * NS / (last - anchor))
            self._anchor_ns = last
            self._intervals = 0
        power = self._estimate_w
        capped = False
        if power is not None and last is not None and t_ns > last:
            cap = self.joules_per_pulse * NS / (t_ns - last)
            if cap < power:
                power, capped = cap, True
        return PulseSample(power, self.energy_j, self.pulses, capped)


class Cf1Meter:
    """CF1 frequency to current or voltage, one SEL window at a time.

    The first pulse after a SEL switch only anchors the window (the chip's
    CF1 output is unsettled right after the switch, and the time from the
    switch to the first pulse is not a period). A window needs two counted
    pulses to give a frequency; a current window with fewer means (almost) no
    current: 0 A. A voltage window with fewer keeps the voltage unknown
    (mains never gives no CF1 pulses: the wiring is broken).
    """

    __slots__ = ("_count", "_first_ns", "_last_ns", "_seen", "amps_per_hz", "bounces",
                 "current_a", "debounce_ns", "mode", "voltage_v", "volts_per_hz")

    def __init__(self, *, amps_per_hz: float = HLW8012_AMPS_PER_HZ,
                 volts_per_hz: float = HLW8012_VOLTS_PER_HZ, debounce_ns: int = 0,
                 mode: Cf1Mode = "current") -> None:
        self.amps_per_hz = amps_per_hz
        self.volts_per_hz = volts_per_hz
        self.debounce_ns = max(0, debounce_ns)
        self.mode: Cf1Mode = mode
        self.current_a: float | None = None
        self.voltage_v: float | None = None
        self.bounces = 0
        self._seen = 0  # pulses since the switch, the settling one included
        self._count = 0  # intervals measured
        self._first_ns = 0
        self._last_ns = 0

    def pulse(self, t_ns: int) -> None:
        if self._seen and t_ns - self._last_ns < self.debounce_ns:
            self.bounces += 1
            return
        self._seen += 1
        if self._seen == 2:
            self._first_ns = t_ns
        elif self._seen > 2:
            self._count += 1
        self._last_ns = t_ns

    def select(self, mode: Cf1Mode) -> None:
        """SEL switched to ``mode``: finish the current window, start the next."""
        if self._count and self._last_ns > self._first_ns:
            hz = self._count * NS / (self._last_ns - self._first_ns)
            if self.mode == "current":
                self.current_a = hz * self.amps_per_hz
            else:
                self.voltage_v = hz * self.volts_per_hz
        elif self.mode == "current":
            self.current_a = 0.0
        self.mode = mode
        self._seen = self._count = 0
