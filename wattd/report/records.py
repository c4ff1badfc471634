"""What a journal scan finds: runs per meter, and what it met on the way."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from wattd.energy import EnergyResult


@dataclass(slots=True)
class RunRecord:
    """One run (or phase) on one meter, as found in the journal."""

    run: str
    phase: str | None
    meter: str
    start_ns: int
    stop_ns: int | None = None  # None while no stop was seen
    tags: dict[str, str] = field(default_factory=dict)
    end: str = "open"  # "stop", "abort", "daemon" (closed by a wattd_run point), "open"
    result: EnergyResult | None = None
    integrated_to_ns: int | None = None  # the stop time, or the last reading of an open run
    note: str | None = None
    # No reading measured it (wattd.energy.IntervalIntegrator.measured): no energy, never 0 J.
    no_readings: bool = False
    # From the daemon's own wattd_run point, when journaled.
    counter_energy_j: float | None = None
    daemon_energy_j: float | None = None
    gap_s: float | None = None
    daemon_extrapolated_s: float | None = None
    aborted: bool = False
    clock_step: bool = False
    plot: list[tuple[int, float]] | None = None

    @property
    def is_open(self) -> bool:
        return self.end == "open"


@dataclass(slots=True)
class ScanStats:
    segments: int = 0
    bytes_read: int = 0  # uncompressed
    lines: int = 0
    readings: int = 0
    readings_without_power: int = 0
    markers: int = 0
    run_points: int = 0
    torn_lines: int = 0  # a last line without its newline
    bad_lines: int = 0  # not line protocol, or a wattd point missing what it needs
    unknown: Counter[str] = field(default_factory=Counter)  # measurement -> lines
    damaged_segments: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ScanResult:
    records: list[RunRecord]
    meters: list[str]
    stats: ScanStats
