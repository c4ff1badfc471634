"""Calibration from a reference load (pure): what the meter read vs what it should read.

Every driver's scale is linear, so one steady resistive load of known power
(and, optionally, a trusted voltage reading) fixes it:

- HLW8032 / CSE7766 / gb202: V = raw x Kv, P = raw x Kv x Ki, I = raw x Ki.
  Kv from the voltage (when a reference voltage is given), then Ki from the
  power with the new Kv.
- BL0940 / BL0942: value = raw / reference. A reference voltage fixes
  ``voltage_reference``; the power fixes ``power_reference`` (its sign too:
  a board with a reversed shunt reads negative power and gets a negative
  reference); ``energy_reference`` comes from the CF counter itself, when the
  window held enough counts (one BL0942 count is ~1 kJ: at 100 W, 100 counts
  take 18 minutes); the current of a resistive load is P / V (power factor 1),
  which fixes ``current_reference``.
- pulse: ``watts_per_hz`` / ``joules_per_pulse`` scale with true / measured
  power, ``pulses_per_kwh`` inversely; with CF1, ``amps_per_hz`` from P / V
  and ``volts_per_hz`` from the reference voltage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

HLW_FAMILY = ("hlw8032", "cse7766", "gb202")
MIN_CF_COUNTS = 100  # CF counts needed to calibrate the energy counter to 1 %
BL09XX = ("bl0940", "bl0942")
MIN_MCP_COUNTS = 100  # MCP39F511N energy counts for a 1 % energy_j_per_count
# SPEC 8 meters with no coefficients of their own: calibrate only checks them.
CHECK_ONLY = ("um", "hwmon", "shelly", "tasmota")


@dataclass(slots=True, frozen=True)
class Measured:
    """Means of the meter's readings over the calibration window."""

    power_w: float
    voltage_v: float | None = None
    current_a: float | None = None
    samples: int = 0
    power_rel_stdev: float = 0.0
    counter_energy_j: float | None = None  # hardware counter's energy over the window
    duration_s: float = 0.0  # first to last reading


@dataclass(slots=True)
class Derived:
    calibration: dict[str, float] = field(default_factory=dict)  # under `calibration:`
    meter_keys: dict[str, float] = field(default_factory=dict)  # on the meter itself (pulse)
    notes: list[str] = field(default_factory=list)


class CalibrationError(ValueError):
    """The measurement cannot give a calibration (no power, no voltage, ...)."""


def _ratio(true: float, measured: float | None, what: str) -> float:
    if measured is None or measured == 0 or not math.isfinite(measured):
        raise CalibrationError(f"the meter reported no usable {what}; cannot calibrate it")
    return true / measured


def derive(driver: str, current: Mapping[str, float], measured: Measured, *,
           reference_w: float, reference_v: float | None = None,
           pulse_keys: Mapping[str, float | None] | None = None) -> Derived:
    """New settings for ``driver`` given its ``current`` calibration values."""
    if not reference_w > 0:
        raise CalibrationError("--reference-watts must be > 0")
    if reference_v is not None and not reference_v > 0:
        raise CalibrationError("--reference-volts must be > 0")
    out = Derived()
    p_ratio = _ratio(reference_w, measured.power_w, "power")  # true / measured
    v_ratio = (_ratio(reference_v, measured.voltage_v, "voltage")
               if reference_v is not None else None)
    true_v = reference_v if reference_v is not None else measured.voltage_v
    if driver in HLW_FAMILY:
        kv, ki = current["kv"], current["ki"]
        kv_new = kv * v_ratio if v_ratio is not None else kv
        ki_new = ki * p_ratio * (kv / kv_new)
        out.calibration = {"kv": kv_new, "ki": ki_new}
        if v_ratio is None:
            out.notes.append("Kv kept (no --reference-volts); Ki absorbs the whole power error")
    elif driver in BL09XX:
        cal = dict(current)
        if v_ratio is not None:
            cal["voltage_reference"] = current["voltage_reference"] / v_ratio
        cal["power_reference"] = current["power_reference"] / p_ratio
        eref = current["energy_reference"]
        counts = (measured.counter_energy_j or 0.0) / 3.6e6 * abs(eref)
        if counts >= MIN_CF_COUNTS and measured.duration_s > 0:
            true_j = reference_w * measured.duration_s
            cal["energy_reference"] = eref * (measured.counter_energy_j or 0.0) / true_j
        else:
            out.notes.append(f"energy_reference kept: the window held {counts:.0f} CF counts, "
                             f"{MIN_CF_COUNTS} are needed for 1 %; run longer (--seconds) to "
                             "calibrate the hardware counter (run energy comes from power)")
        if true_v:
            true_i = reference_w / true_v
            cal["current_reference"] = (current["current_reference"]
                                        / _ratio(true_i, measured.current_a, "current"))
        if p_ratio < 0:
            out.notes.append("the meter read negative power: the shunt is wired the other way; "
                             "the negative power_reference corrects it")
        out.calibration = cal
    elif driver == "pulse":
        keys = dict(pulse_keys or {})
        if keys.get("watts_per_hz") is not None:
            out.meter_keys["watts_per_hz"] = float(keys["watts_per_hz"] or 0) * p_ratio
        elif keys.get("joules_per_pulse") is not None:
            out.meter_keys["joules_per_pulse"] = float(keys["joules_per_pulse"] or 0) * p_ratio
        elif keys.get("pulses_per_kwh") is not None:
            out.meter_keys["pulses_per_kwh"] = float(keys["pulses_per_kwh"] or 0) / p_ratio
        if "amps_per_hz" in current and true_v and measured.current_a:
            out.calibration["amps_per_hz"] = (current["amps_per_hz"]
                                              * _ratio(reference_w / true_v, measured.current_a,
                                                       "current"))
        if "volts_per_hz" in current and v_ratio is not None:
            out.calibration["volts_per_hz"] = current["volts_per_hz"] * v_ratio
    elif driver == "mcp39f511n":
        cal = {"power_w_per_count": current["power_w_per_count"] * p_ratio,
               "energy_j_per_count": current["energy_j_per_count"]}
        counts = (measured.counter_energy_j or 0.0) / current["energy_j_per_count"]
        if counts >= MIN_MCP_COUNTS and measured.duration_s > 0:
            true_j = reference_w * measured.duration_s
            cal["energy_j_per_count"] *= true_j / (measured.counter_energy_j or 1.0)
        else:
            out.notes.append(f"energy_j_per_count kept: the window held {counts:.0f} counts, "
                             f"{MIN_MCP_COUNTS} are needed for 1 %; run longer (--seconds), "
                             "or enable energy accumulation on the chip")
        out.calibration = cal
    elif driver in CHECK_ONLY:
        error = measured.power_w / reference_w - 1.0
        out.notes.append(f"{driver} has no coefficients to set: it reads {error:+.2%} against "
                         "the reference power")
        if measured.counter_energy_j is not None and measured.duration_s > 0:
            counter_w = measured.counter_energy_j / measured.duration_s
            out.notes.append(f"its energy counter gives {counter_w:.3f} W over the window "
                             f"({counter_w / reference_w - 1.0:+.2%}; resolution: see "
                             f"firmware_notes/{driver}.md)")
    else:
        raise CalibrationError(f"driver {driver!r} has nothing to calibrate")
    if measured.power_rel_stdev > 0.02:
        out.notes.append(f"power varied by {measured.power_rel_stdev:.1%} during the "
                         "measurement: use a steady resistive load (heater, kettle, "
                         "incandescent bulb), not a computer")
    if abs(reference_w) < 20:
        out.notes.append("a reference below 20 W calibrates poorly (the chips are specified "
                         "down to ~1 % of full scale); prefer 100 W or more")
    return out
