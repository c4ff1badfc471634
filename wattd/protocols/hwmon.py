"""Linux hwmon power sensors: INA219 / INA226 through the kernel's ina2xx driver (SPEC 8.3).

Pure: the text of the sensor's files in, a measurement or a counted error out.
Units are the hwmon ABI's: ``power1_input`` microwatts, ``in1_input`` (bus
voltage) millivolts, ``curr1_input`` milliamps. Power comes from
``power1_input`` when the sensor has it, else from voltage x current. Reading
the files (and a file that vanished: a port error) is the transport's job.
"""

from __future__ import annotations

from collections.abc import Mapping

from wattd.protocols.base import DecodeCounters, Event
from wattd.protocols.plausible import RangesLike
from wattd.protocols.polled import DC_PLAUSIBLE, count_error, implausible, measurement, plausible_of

POWER_FILE = "power1_input"
VOLTAGE_FILE = "in1_input"
CURRENT_FILE = "curr1_input"
NAME_FILE = "name"


def files_to_read(has_power_file: bool) -> tuple[str, ...]:
    if has_power_file:
        return (POWER_FILE, VOLTAGE_FILE, CURRENT_FILE)
    return (VOLTAGE_FILE, CURRENT_FILE)


def encode_files(*, voltage_v: float, current_a: float, power_w: float | None) -> dict[str, str]:
    """The files' content for these values (simulator, tests); no power file if None."""
    out = {VOLTAGE_FILE: f"{round(voltage_v * 1000)}\n",
           CURRENT_FILE: f"{round(current_a * 1000)}\n"}
    if power_w is not None:
        out[POWER_FILE] = f"{round(power_w * 1e6)}\n"
    return out


class HwmonDecoder:
    driver = "hwmon"

    def __init__(self, plausible: RangesLike | None = None) -> None:
        self.plausible = plausible_of(plausible, DC_PLAUSIBLE)
        self.counters = DecodeCounters()

    def decode(self, texts: Mapping[str, str], t_ns: int) -> Event:
        """``texts``: file name -> content, for the files of ``files_to_read``."""
        values: dict[str, int] = {}
        for name, text in texts.items():
            try:
                values[name] = int(text.strip())
            except ValueError:
                return count_error(self.counters, self.driver, "garbage",
                                   f"{name} holds {text[:40]!r}, not an integer", t_ns)
        voltage_v = values[VOLTAGE_FILE] / 1000 if VOLTAGE_FILE in values else None
        current_a = values[CURRENT_FILE] / 1000 if CURRENT_FILE in values else None
        if POWER_FILE in values:
            power_w = values[POWER_FILE] / 1e6
        elif voltage_v is not None and current_a is not None:
            power_w = voltage_v * current_a
        else:
            return count_error(self.counters, self.driver, "missing_field",
                               "neither power1_input nor in1_input and curr1_input", t_ns)
        problem = implausible(self.plausible, voltage_v, current_a, power_w)
        if problem:
            return count_error(self.counters, self.driver, "implausible", problem, t_ns)
        self.counters.frames_ok += 1
        return measurement(t_ns=t_ns, frame_bytes=0, power_w=power_w, voltage_v=voltage_v,
                           current_a=current_a)
