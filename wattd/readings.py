"""The reading record that flows from sources through the pipeline to the journal."""

from __future__ import annotations

from dataclasses import dataclass, field

from wattd.lineprotocol import FieldValue, format_line

POWER_MEASUREMENT = "wattd_power"


@dataclass(slots=True)
class Reading:
    meter: str
    t_ns: int  # CLOCK_REALTIME ns: estimated moment the frame's first byte left the meter
    t_boot_ns: int  # the same instant on CLOCK_BOOTTIME (durations, online integration)
    power_w: float | None
    voltage_v: float | None = None
    current_a: float | None = None
    apparent_va: float | None = None
    power_factor: float | None = None
    energy_j: float | None = None  # meter's cumulative energy since the daemon started
    status: str = "ok"
    clock_synced: bool = True
    tags: dict[str, str] = field(default_factory=dict)  # static meter tags + run tags

    def fields(self) -> dict[str, FieldValue]:
        out: dict[str, FieldValue] = {}
        for name in ("power_w", "voltage_v", "current_a", "apparent_va", "power_factor",
                     "energy_j"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        out["clock_synced"] = self.clock_synced
        return out

    def to_line(self) -> str:
        tags = dict(self.tags)
        tags["meter"] = self.meter
        return format_line(POWER_MEASUREMENT, tags, self.fields(), self.t_ns)
