"""Per-run totals over meters and hosts (SPEC 10): the joules of a whole
cluster for one run, from the journal report or the database report alike.

A run's meters are its closed, whole-run rows (phases left out) whose start
lies within ``SAME_RUN_NS`` of the run's first start: daemons stamping one
multicast marker agree to the skew limit, while a later run reusing the name
starts a total of its own. A meter listed without a result (missing from the
database, no readings) makes the total incomplete: ``energy_j`` is then
None (never a sum that silently counts it as 0), the sum of the others is in
``partial_energy_j`` and the meter is named in ``missing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from wattd.energy import NS
from wattd.report.model import Report, RunRow, group_name
from wattd.report.stats import fieller_ratio, summarize, welch_p

SAME_RUN_NS = 5 * NS


@dataclass(slots=True)
class RunTotal:
    run: str
    start_ns: int
    rows: list[RunRow] = field(default_factory=list)
    meter_names: set[str] = field(default_factory=set)

    @property
    def measured(self) -> list[RunRow]:
        return [r for r in self.rows if r.record.result is not None and not r.record.aborted]

    @property
    def missing(self) -> list[str]:
        return sorted(r.record.meter for r in self.rows
                      if r.record.result is None and not r.record.aborted)

    @property
    def meters(self) -> int:
        return len({r.record.meter for r in self.measured})

    @property
    def hosts(self) -> int:
        measured = self.measured
        named = {r.record.tags["host"] for r in measured if "host" in r.record.tags}
        return len(named) if named else len({r.record.meter for r in measured})

    @property
    def partial_energy_j(self) -> float:
        return math.fsum(r.record.result.energy_j for r in self.measured
                         if r.record.result is not None)

    @property
    def energy_j(self) -> float | None:
        if self.missing or not self.measured:
            return None
        return self.partial_energy_j

    @property
    def duration_s(self) -> float | None:
        stops = [r.record.stop_ns for r in self.measured if r.record.stop_ns is not None]
        if not stops:
            return None
        starts = [r.record.start_ns for r in self.measured]
        return (max(stops) - min(starts)) / NS

    @property
    def mean_w(self) -> float | None:
        """The cluster's mean power: the sum of every meter's mean power."""
        if self.energy_j is None:
            return None
        return math.fsum(r.record.result.mean_w for r in self.measured
                         if r.record.result is not None)


def run_totals(report: Report) -> list[RunTotal]:
    out: list[RunTotal] = []
    latest: dict[str, RunTotal] = {}
    for row in sorted(report.rows, key=lambda r: r.record.start_ns):
        rec = row.record
        if rec.phase is not None or rec.is_open:
            continue
        total = latest.get(rec.run)
        if total is None or rec.start_ns - total.start_ns > SAME_RUN_NS or \
                rec.meter in total.meter_names:
            total = RunTotal(rec.run, rec.start_ns)
            latest[rec.run] = total
            out.append(total)
        total.rows.append(row)
        total.meter_names.add(rec.meter)
    return out


def totals_json(report: Report) -> list[dict[str, Any]]:
    out = []
    for t in run_totals(report):
        item: dict[str, Any] = {"run": t.run, "start_ns": t.start_ns, "meters": t.meters,
                                "hosts": t.hosts, "energy_j": t.energy_j,
                                "duration_s": t.duration_s, "mean_w": t.mean_w}
        if t.missing:
            item["missing"] = t.missing
            item["partial_energy_j"] = t.partial_energy_j
        out.append(item)
    return out


def _total_groups(report: Report) -> dict[str, list[float]]:
    """Complete totals by group name (as the report groups runs by name)."""
    groups: dict[str, list[float]] = {}
    for t in run_totals(report):
        if t.energy_j is not None and not any(r.record.clock_step for r in t.rows):
            groups.setdefault(group_name(t.run), []).append(t.energy_j)
    return groups


def total_comparisons_json(report: Report) -> list[dict[str, Any]]:
    """Every pair of repeated groups (n >= 2 each) of totals: ratio of mean
    energies with its Fieller 95 % CI and Welch's p, as the per-meter comparisons."""
    repeated = [(name, v) for name, v in _total_groups(report).items() if len(v) >= 2]
    out = []
    for i, (a, va) in enumerate(repeated):
        for b, vb in repeated[i + 1:]:
            if math.fsum(vb) == 0:
                continue
            ratio = fieller_ratio(va, vb)
            out.append({"a": a, "b": b, "ratio": ratio.ratio, "ci95_low": ratio.ci95_low,
                        "ci95_high": ratio.ci95_high, "p_value": welch_p(va, vb),
                        "meter": "all", "metric": "energy_j"})
    return out


def total_groups_json(report: Report) -> list[dict[str, Any]]:
    """Repeated runs' totals: the usual statistics of the whole cluster's energy per run."""
    out = []
    for name, energies in _total_groups(report).items():
        s = summarize(energies)
        out.append({"group": name, "n": s.n, "mean_energy_j": s.mean,
                    "stdev_energy_j": s.stdev, "rel_stdev": s.rel_stdev,
                    "ci95_low_j": s.ci95_low, "ci95_high_j": s.ci95_high})
    return out

