"""Hand-built journals for the report tests, written with the real line formatter."""

from __future__ import annotations

import gzip
from pathlib import Path

from wattd.lineprotocol import FieldValue, format_line

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a realistic epoch so timestamps have 19 digits


def ts(seconds: float) -> int:
    """Seconds after T0 as integer ns (exact for the fractions the tests use)."""
    return T0 + round(seconds * S)


class JournalBuilder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def power(self, meter: str, t_s: float, power_w: float, **tags: str) -> JournalBuilder:
        fields: dict[str, FieldValue] = {"power_w": float(power_w), "voltage_v": 230.0,
                                         "current_a": power_w / 230.0, "energy_j": 1.0,
                                         "clock_synced": True}
        self.lines.append(format_line("wattd_power", {"meter": meter, **tags}, fields,
                                      ts(t_s)))
        return self

    def readings(self, meter: str, start_s: float, stop_s: float, step_s: float,
                 power: float | None = None) -> JournalBuilder:
        """Readings every step from start to stop inclusive; power constant or = t."""
        n = round((stop_s - start_s) / step_s)
        for i in range(n + 1):
            t = start_s + i * step_s
            self.power(meter, t, t if power is None else power)
        return self

    def marker(self, verb: str, run: str, t_s: float, *, meter: str | None = None,
               phase: str | None = None, text: str = "", source: str = "127.0.0.1"
               ) -> JournalBuilder:
        tags = {"run": run, "verb": verb, "source": source}
        if meter:
            tags["meter"] = meter
        if phase:
            tags["phase"] = phase
        self.lines.append(format_line("wattd_marker", tags, {"text": text}, ts(t_s)))
        return self

    def run_point(self, run: str, meter: str, start_s: float, stop_s: float,
                  **fields: FieldValue) -> JournalBuilder:
        all_fields: dict[str, FieldValue] = {"energy_j": 0.0, "duration_s": stop_s - start_s,
                                             "start_ns": ts(start_s), **fields}
        self.lines.append(format_line("wattd_run", {"run": run, "meter": meter}, all_fields,
                                      ts(stop_s)))
        return self

    def raw(self, line: str) -> JournalBuilder:
        self.lines.append(line)
        return self

    def write(self, directory: Path, segment: int = 1, *, gz: bool = False,
              torn: str | None = None) -> Path:
        """Write the lines collected so far as one segment and start afresh."""
        directory.mkdir(parents=True, exist_ok=True)
        data = "".join(line + "\n" for line in self.lines) + (torn or "")
        self.lines = []
        name = f"{segment:08d}.lp" + (".gz" if gz else "")
        path = directory / name
        if gz:
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.write(data)
        else:
            path.write_text(data, encoding="utf-8")
        return path
