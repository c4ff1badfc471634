"""Plausibility ranges shared by every decoder (SPEC 1.1: readings outside are dropped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class RangesLike(Protocol):
    """Anything with the three ranges, e.g. ``wattd.config.PlausibleRanges``."""

    @property
    def voltage_v(self) -> tuple[float, float]: ...

    @property
    def current_a(self) -> tuple[float, float]: ...

    @property
    def power_w(self) -> tuple[float, float]: ...


@dataclass(slots=True, frozen=True)
class Plausible:
    """Inclusive [low, high] ranges; the defaults are SPEC 6's."""

    voltage_v: tuple[float, float] = (80.0, 300.0)
    current_a: tuple[float, float] = (0.0, 20.0)
    power_w: tuple[float, float] = (0.0, 5000.0)

    @classmethod
    def of(cls, ranges: RangesLike | None) -> Plausible:
        if ranges is None:
            return cls()
        if isinstance(ranges, Plausible):
            return ranges
        return cls(tuple(ranges.voltage_v), tuple(ranges.current_a),  # type: ignore[arg-type]
                   tuple(ranges.power_w))  # type: ignore[arg-type]
