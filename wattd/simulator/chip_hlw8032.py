"""A model of the HLW8032 / CSE7766 chip, faithful to its behaviour, not just its frame.

Pure: given simulated time (seconds) and the power drawn, it produces the frame
the chip would send at that moment. What it reproduces:

- Energy is integrated continuously; one PF pulse is emitted per
  joules-per-pulse (Ppar x Kv x Ki / 1e6 J). The 16-bit PF counter advances
  with the pulses and wraps, toggling bit 7 of the update byte on each wrap.
- Preg is the pulse period in microseconds, so the power-refreshed bit (4) is
  set only in frames during which a pulse completed. In other frames Preg
  holds the period still in progress, as real chips send (ESPurna issue #867
  logs show it counting up). At 3 W that is a long run of frames without the
  power bit; at 100 W every frame carries it.
- When no pulse has come for longer than the 24-bit Preg can count
  (~16.8 s), the chip reports "power out of range" (state 0xF2: no load).
- Voltage ~230 V with small Gaussian noise (seeded), current consistent with
  power / (voltage x power factor); both refreshed every frame.
"""

from __future__ import annotations

import random

from wattd.protocols.hlw8032 import (
    FLAG_NO_LOAD,
    PF_MODULO,
    STATE_FLAGS,
    STATE_NORMAL,
    UPDATE_CURRENT,
    UPDATE_PF_TOGGLE,
    UPDATE_POWER,
    UPDATE_VOLTAGE,
    encode_frame,
)
from wattd.simulator.power_profile import PowerSource

FRAME_INTERVAL_S = 0.104  # published logs show 103-106 ms between frames
REG_MAX = 0xFFFFFF
# Typical factory parameters (values seen in published CSE7766 frames).
DEFAULT_VPAR = 190_200
DEFAULT_IPAR = 16_400
DEFAULT_PPAR = 5_351_000
_SUBSTEP_S = 0.01  # energy integration step: pulse times are interpolated inside it


class ChipModel:
    """Frames of one chip following ``power``; call ``frame_at`` with increasing times."""

    def __init__(self, power: PowerSource, *, kv: float = 1.0, ki: float = 1.0,
                 voltage_v: float = 230.0, voltage_noise_v: float = 0.3,
                 power_factor: float = 0.95, pf_start: int = 0, seed: int | None = 0,
                 vpar: int = DEFAULT_VPAR, ipar: int = DEFAULT_IPAR,
                 ppar: int = DEFAULT_PPAR) -> None:
        self.power = power
        self.kv = kv
        self.ki = ki
        self.voltage_v = voltage_v
        self.voltage_noise_v = voltage_noise_v
        self.power_factor = power_factor
        self.vpar, self.ipar, self.ppar = vpar, ipar, ppar
        self.joules_per_pulse = ppar * kv * ki / 1e6
        self.pulses = pf_start  # total pulses; the wire shows them modulo 65536
        self.toggle = 0
        self.energy_j = 0.0  # true energy drawn since the first frame
        self._rng = random.Random(seed)  # noqa: S311 - simulation noise, not security
        self._t_s: float | None = None
        self._energy_since_pulse_j = 0.0
        self._last_pulse_s = 0.0
        self._period_s = 0.0  # last completed pulse period
        self._pulsed = False  # a pulse completed since the previous frame

    def _start(self, t_s: float) -> None:
        """As if the chip had been running at the current power for ever."""
        self._t_s = t_s
        power = self.power.power_at(t_s)
        if power > 0:
            self._period_s = self.joules_per_pulse / power
            phase = self._rng.random()
            self._last_pulse_s = t_s - phase * self._period_s
            self._energy_since_pulse_j = phase * self.joules_per_pulse
            self._pulsed = True
        else:
            self._last_pulse_s = t_s - REG_MAX / 1e6  # long silent: no load

    def _advance(self, t_s: float) -> None:
        t = self._t_s
        assert t is not None
        jpp = self.joules_per_pulse
        while t < t_s:
            step = min(_SUBSTEP_S, t_s - t)
            power = self.power.power_at(t + step / 2)
            before = self._energy_since_pulse_j
            after = before + power * step
            self.energy_j += power * step
            while after >= jpp and power > 0:
                pulse_t = t + (jpp - before) / power
                self._period_s = pulse_t - self._last_pulse_s
                self._last_pulse_s = pulse_t
                self.pulses += 1
                if self.pulses % PF_MODULO == 0:
                    self.toggle ^= UPDATE_PF_TOGGLE
                self._pulsed = True
                after -= jpp
                before = 0.0
                t, step = pulse_t, step - (pulse_t - t)
            self._energy_since_pulse_j = after
            t += step
        self._t_s = t_s

    def frame_at(self, t_s: float) -> bytes:
        """The frame the chip sends at simulated time ``t_s`` (seconds)."""
        if self._t_s is None:
            self._start(t_s)
        elif t_s > self._t_s:
            self._advance(t_s)
        power = self.power.power_at(t_s)
        voltage = self.voltage_v + self._rng.gauss(0.0, self.voltage_noise_v)
        update = UPDATE_VOLTAGE | self.toggle | 0x01  # bit 0 is set in every published frame
        silence_us = (t_s - self._last_pulse_s) * 1e6
        no_load = silence_us > REG_MAX
        if self._pulsed and not no_load:
            update |= UPDATE_POWER
            preg = round(self._period_s * 1e6)
        else:
            preg = round(silence_us)  # the period in progress
        self._pulsed = False
        current = power / (voltage * self.power_factor) if voltage > 0 else 0.0
        ireg = REG_MAX
        if current > 0 and self.ipar * self.ki / current <= REG_MAX:
            ireg = round(self.ipar * self.ki / current)
            update |= UPDATE_CURRENT
        vreg = min(REG_MAX, max(1, round(self.vpar * self.kv / voltage)))
        state = (STATE_FLAGS | FLAG_NO_LOAD) if no_load else STATE_NORMAL
        return encode_frame(state=state, vpar=self.vpar, vreg=vreg, ipar=self.ipar, ireg=ireg,
                            ppar=self.ppar, preg=min(REG_MAX, max(1, preg)), update=update,
                            pf=self.pulses)
