"""What power a simulated meter follows: a constant, or a profile file of steps.

Profile file format (CSV-like text, one step per line)::

    # t_s,power_w      comments and blank lines are ignored
    0,3.2              from t = 0 s the load draws 3.2 W
    10,6.5             from t = 10 s, 6.5 W
    25,3.2
    40,loop            optional last line: at 40 s start again from t = 0

Times are seconds since the simulation started, strictly increasing, the
first one 0. Power holds from its line's time until the next line's. With a
final ``T,loop`` line the profile repeats every T seconds; without it the
last step holds for ever.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wattd.errors import ConfigError


class PowerSource(Protocol):
    def power_at(self, t_s: float) -> float:
        """True active power (W) drawn at ``t_s`` seconds of simulated time."""
        ...


@dataclass(slots=True, frozen=True)
class ConstantPower:
    power_w: float

    def power_at(self, t_s: float) -> float:
        return self.power_w


@dataclass(slots=True, frozen=True)
class PowerProfile:
    times_s: tuple[float, ...]
    powers_w: tuple[float, ...]
    loop_s: float | None = None

    def power_at(self, t_s: float) -> float:
        if self.loop_s:
            t_s %= self.loop_s
        index = bisect.bisect_right(self.times_s, t_s) - 1
        return self.powers_w[max(index, 0)]

    @classmethod
    def parse(cls, text: str, source: str = "<profile>") -> PowerProfile:
        times: list[float] = []
        powers: list[float] = []
        loop_s: float | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if loop_s is not None:
                raise ConfigError("nothing may follow the 'loop' line", file=source, line=number)
            try:
                t_s, power_w = _parse_step(line)
            except ValueError as exc:
                raise ConfigError(f"bad profile line {raw.strip()!r}: {exc}",
                                  file=source, line=number) from None
            if power_w is None:  # the loop marker
                if not times or t_s <= times[-1]:
                    raise ConfigError("the loop time must follow the last step",
                                      file=source, line=number)
                loop_s = t_s
                continue
            if power_w < 0:
                raise ConfigError("power_w must be >= 0", file=source, line=number)
            if (not times and t_s != 0) or (times and t_s <= times[-1]):
                raise ConfigError("times must start at 0 and increase", file=source, line=number)
            times.append(t_s)
            powers.append(power_w)
        if not times:
            raise ConfigError("profile has no steps", file=source)
        return cls(tuple(times), tuple(powers), loop_s)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PowerProfile:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read profile: {exc.strerror}", file=str(path)) from None
        return cls.parse(text, str(path))


def _parse_step(line: str) -> tuple[float, float | None]:
    """``t_s,power_w`` -> (t_s, power_w); ``T,loop`` -> (T, None). ValueError otherwise."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        raise ValueError("expected 't_s,power_w'")
    if parts[1].lower() == "loop":
        return float(parts[0]), None
    return float(parts[0]), float(parts[1])


SUBSTEP_S = 0.05


class EnergyIntegrator:
    """The energy a simulated chip has counted: power integrated from the first
    time it was asked, in midpoint steps of at most SUBSTEP_S (a step change of
    the profile is followed closely enough for any counter the chips keep)."""

    def __init__(self, power: PowerSource) -> None:
        self.power = power
        self.energy_j = 0.0
        self._t_s: float | None = None

    def advance(self, t_s: float) -> None:
        if self._t_s is None:
            self._t_s = t_s
            return
        t = self._t_s
        while t < t_s:
            step = min(SUBSTEP_S, t_s - t)
            self.energy_j += self.power.power_at(t + step / 2) * step
            t += step
        self._t_s = max(self._t_s, t_s)
