"""From scanned runs to the report: selection, baseline, per-unit figures,
groups of repeated runs and comparisons between groups.

Decisions where the spec is silent (also in the README):
- Repetitions: a trailing ``-N``, ``_N`` or ``.N`` (digits) is dropped to form
  the group name (``rust-1``, ``rust-2`` -> ``rust``); ``--group-by TAG`` groups
  by a tag's value instead (runs without the tag stay out of groups).
- Statistics use closed, complete runs only: open runs (no stop), aborted
  runs, runs flagged ``clock_step``, phases and the baseline itself are listed
  but kept out of groups.
- A run no reading measured (``no_readings``: none in [start, stop) and none
  on each side to interpolate between) has no energy, never 0 J: it is listed
  with ``-`` and the flag ``no_readings``, kept out of its group's statistics
  (``n`` counts measured runs only) and counted in the group's
  ``no_readings`` (and a note), so a left-out run is never silent.
- ``--baseline RUN`` is a run name (every run of that name, pooled as total
  energy / total duration per meter) or, failing that, a group name.
- Comparisons pair groups of repeated runs (n >= 2 each, so that every ratio
  has an interval and a p-value) on the same meter, in order of first run.
- Comparisons use the most specific figure every run of both groups has:
  net energy per unit with a baseline and a unit count, else energy per unit,
  else net energy, else energy (``metric`` says which); with a baseline the
  gross figure is compared too (a second comparison of the same pair). Time
  per request and CPU seconds per unit are compared too when every run of
  both groups has them (SPEC 9.4).
- The unit count of a run is its ``--per`` tag (default ``requests``), else
  its load result of the same name (``requests`` from the load generator).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from wattd.report.experiment import ExperimentData, RunCpu, RunLoad
from wattd.report.records import RunRecord, ScanResult
from wattd.report.stats import Ratio, Summary, fieller_ratio, summarize, welch_p

REPETITION_RE = re.compile(r"^(.+?)[-_.]\d+$")
DEFAULT_PER_TAG = "requests"


class ReportError(Exception):
    """The report cannot be made (nothing selected, unknown baseline); exit 1."""


def group_name(run: str) -> str:
    """``rust-1`` -> ``rust``; names without a numeric suffix are their own group."""
    match = REPETITION_RE.match(run)
    return match.group(1) if match else run


@dataclass(slots=True)
class ReportOptions:
    run_globs: Sequence[str] = ()
    baseline: str | None = None
    per_tag: str | None = None  # None: the `requests` tag
    group_by: str | None = None
    # Off for a fleet's database (many meters): its comparisons are those of the
    # per-run totals (wattd.report.totals), not of every meter's groups pairwise.
    per_meter_comparisons: bool = True


@dataclass(slots=True)
class RunRow:
    record: RunRecord
    status: str  # "ok", "open", "aborted", "no data"
    group: str | None = None  # None when kept out of statistics
    excluded_because: str | None = None
    units: float | None = None
    net_energy_j: float | None = None
    energy_per_unit_j: float | None = None
    net_energy_per_unit_j: float | None = None
    load: RunLoad | None = None  # wattd_result / wattd_latency of the run
    cpu: RunCpu | None = None  # wattd_cpu over the run
    cpu_s_per_unit: float | None = None
    left_out_of: str | None = None  # the group a run without readings would be in

    def result(self, key: str) -> float | None:
        return None if self.load is None else self.load.results.get(key)

    @property
    def time_per_request_ms(self) -> float | None:
        return self.result("time_per_request_ms")

    @property
    def cpu_s(self) -> float | None:
        return None if self.cpu is None else self.cpu.cpu_s

    def latency_ms(self, q: int) -> float | None:
        """``latency_ms_pNN`` from the results, else the distribution's q=NN."""
        value = self.result(f"latency_ms_p{q}")
        if value is None and self.load is not None:
            value = self.load.latency_ms.get(float(q))
        return value

    @property
    def duration_s(self) -> float | None:
        """The run's duration: its result's, else (no readings) stop - start."""
        r = self.record
        if r.result is not None:
            return r.result.duration_s
        if r.stop_ns is None or r.end == "missing":
            return None
        return max(0, r.stop_ns - r.start_ns) / 1e9

    @property
    def label(self) -> str:
        r = self.record
        return r.run if r.phase is None else f"{r.run} [{r.phase}]"

    def flags(self) -> dict[str, float | bool]:
        r = self.record
        out: dict[str, float | bool] = {}
        if r.gap_s:
            out["gap_s"] = r.gap_s
        extrap = r.result.extrapolated_s if r.result is not None else 0.0
        if extrap:
            out["extrapolated_s"] = extrap
        if r.aborted:
            out["aborted"] = True
        if r.clock_step:
            out["clock_step"] = True
        if r.is_open:
            out["open"] = True
        if r.no_readings:
            out["no_readings"] = True
        return out

    def metric(self, name: str) -> float | None:
        if name == "energy_j":
            return None if self.record.result is None else self.record.result.energy_j
        if name == "cpu_per_unit_s":
            return self.cpu_s_per_unit
        value: float | None = getattr(self, name)
        return value


@dataclass(slots=True)
class Group:
    group: str
    meter: str
    rows: list[RunRow]
    energy: Summary
    figures: dict[str, Summary] = field(default_factory=dict)  # metric -> summary
    no_readings: int = 0  # runs of the group left out: no reading measured them

    def values(self, metric: str) -> list[float]:
        out = [row.metric(metric) for row in self.rows]
        return [v for v in out if v is not None]

    def has(self, metric: str) -> bool:
        return metric in self.figures


@dataclass(slots=True)
class Comparison:
    a: Group
    b: Group
    meter: str
    metric: str
    ratio: Ratio
    p_value: float | None


@dataclass(slots=True)
class Report:
    journal: str
    rows: list[RunRow]
    groups: list[Group]
    comparisons: list[Comparison]
    per_tag: str
    baseline: str | None
    baseline_w: dict[str, float]
    grouping: str  # "name" or "tag <TAG>"
    notes: list[str]
    scan: ScanResult


METRICS = ("net_energy_per_unit_j", "energy_per_unit_j", "net_energy_j", "energy_j")
# Compared beside the energy figure when both groups have them (SPEC 9.4).
LOAD_METRICS = ("time_per_request_ms", "cpu_per_unit_s")
ALL_METRICS = METRICS + LOAD_METRICS


def _parse_units(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        units = float(value)
    except ValueError:
        return None
    return units if math.isfinite(units) and units > 0 else None


def _status(record: RunRecord) -> str:
    if record.result is None:
        return "no data"
    if record.is_open:
        return "open"
    if record.aborted:
        return "aborted"
    return "ok"


def _baseline_power(records: list[RunRecord], name: str) -> dict[str, float]:
    def usable(r: RunRecord) -> bool:
        return (r.phase is None and r.result is not None and not r.is_open and not r.aborted
                and r.result.duration_s > 0)

    chosen = [r for r in records if r.run == name and usable(r)]
    if not chosen:
        chosen = [r for r in records if group_name(r.run) == name and usable(r)]
    energy: dict[str, float] = {}
    duration: dict[str, float] = {}
    for r in chosen:
        assert r.result is not None
        energy[r.meter] = energy.get(r.meter, 0.0) + r.result.energy_j
        duration[r.meter] = duration.get(r.meter, 0.0) + r.result.duration_s
    return {m: energy[m] / duration[m] for m in energy}


def build_report(scan: ScanResult, options: ReportOptions, journal: str = "",
                 experiment: ExperimentData | None = None) -> Report:
    records = scan.records
    notes: list[str] = []
    if not records:
        raise ReportError(
            f"no runs in the journal {journal} ({scan.stats.readings} readings, "
            f"{scan.stats.markers} markers): send 'start NAME' and 'stop NAME' markers "
            "while the daemon runs")
    if options.run_globs:
        selected = [r for r in records
                    if any(fnmatch.fnmatchcase(r.run, g) for g in options.run_globs)]
        if not selected:
            names = sorted({r.run for r in records})
            shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
            raise ReportError(f"no run matches {' '.join(options.run_globs)} "
                              f"(runs in the journal: {shown})")
    else:
        selected = list(records)

    baseline_w: dict[str, float] = {}
    if options.baseline is not None:
        baseline_w = _baseline_power(records, options.baseline)
        if not baseline_w:
            raise ReportError(f"baseline run {options.baseline!r} not found as a closed, "
                              "complete run in the journal")
    per_tag = options.per_tag or DEFAULT_PER_TAG

    starts: dict[str, set[int]] = {}  # run name -> its runs' starts (several meters: one)
    for r in records:
        if r.phase is None:
            starts.setdefault(r.run, set()).add(r.start_ns)
    sorted_starts = {name: sorted(times) for name, times in starts.items()}
    rows: list[RunRow] = []
    for record in selected:
        row = RunRow(record, _status(record))
        if experiment is not None:
            _attach(row, experiment, sorted_starts.get(record.run, []))
        result = record.result
        if result is not None:
            row.units = _parse_units(record.tags.get(per_tag))
            if row.units is None:
                units = row.result(per_tag)
                row.units = units if units is not None and units > 0 else None
            base = baseline_w.get(record.meter)
            if base is not None:
                row.net_energy_j = result.energy_j - base * result.duration_s
            if row.units is not None:
                row.energy_per_unit_j = result.energy_j / row.units
                if row.net_energy_j is not None:
                    row.net_energy_per_unit_j = row.net_energy_j / row.units
            elif options.per_tag is not None and record.phase is None:
                notes.append(f"run {record.run}: no numeric '{per_tag}' tag or result, "
                             "no per-unit figure")
        if row.units is not None and row.cpu_s is not None:
            row.cpu_s_per_unit = row.cpu_s / row.units
        if row.cpu is not None and row.cpu.note is not None:
            notes.append(f"run {row.label}: {row.cpu.note}")
        if options.baseline is not None and record.meter not in baseline_w and result:
            notes.append(f"run {record.run} on meter {record.meter}: the baseline has no "
                         "reading on that meter, no net energy")
        row.excluded_because = _exclusion(row, options)
        name = (record.tags.get(options.group_by) if options.group_by is not None
                else group_name(record.run))
        if row.excluded_because is None:
            row.group = name
            if name is None:
                row.excluded_because = f"no '{options.group_by}' tag"
        elif record.no_readings and _exclusion(row, options, measured=True) is None:
            row.left_out_of = name  # would be in that group: counted there
        rows.append(row)

    if experiment is not None and experiment.stats.bad_lines:
        notes.append(f"{experiment.stats.bad_lines} wattd_result/wattd_latency/wattd_cpu "
                     "line(s) without what they need (run, numbers, q) skipped")
    groups = _groups(rows, notes)
    comparisons = _comparisons(groups) if options.per_meter_comparisons else []
    notes.extend(_row_notes(rows))
    grouping = "name" if options.group_by is None else f"tag {options.group_by}"
    return Report(journal=journal, rows=rows, groups=groups, comparisons=comparisons,
                  per_tag=per_tag, baseline=options.baseline, baseline_w=baseline_w,
                  grouping=grouping, notes=notes, scan=scan)


def _attach(row: RunRow, experiment: ExperimentData, starts: list[int]) -> None:
    r = row.record
    if r.phase is None:
        row.load = experiment.load_of(r.run, r.start_ns, starts)
    stop_ns = r.stop_ns if r.stop_ns is not None else r.integrated_to_ns
    if stop_ns is not None:
        row.cpu = experiment.cpu_of(r.run, r.start_ns, stop_ns)


def _exclusion(row: RunRow, options: ReportOptions, *, measured: bool = False) -> str | None:
    """Why a row stays out of groups (None: it is in one); with ``measured``,
    why it would even if it had readings."""
    r = row.record
    if r.phase is not None:
        return "phase"
    if r.result is None and not measured:
        return r.note or "no readings"
    if r.is_open:
        return "open (no stop in the journal)"
    if r.aborted:
        return "aborted"
    if r.clock_step:
        return "the realtime clock stepped during the run"
    if options.baseline is not None and (
            r.run == options.baseline or group_name(r.run) == options.baseline):
        return "baseline"
    return None


def _row_notes(rows: list[RunRow]) -> list[str]:
    notes = []
    for row in rows:
        r = row.record
        if r.is_open:
            what = ("integrated up to the meter's last reading"
                    if r.result is not None else "no reading after its start")
            notes.append(f"run {row.label} on meter {r.meter} has no stop in the journal "
                         f"(open since {r.start_ns} ns): {what}, flagged open, left out "
                         "of statistics")
        elif r.result is None:
            notes.append(f"run {row.label} on meter {r.meter}: {r.note or 'no readings'}")
    return notes


def _groups(rows: list[RunRow], notes: list[str]) -> list[Group]:
    order: dict[tuple[str, str], list[RunRow]] = {}
    silent: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.group is not None:
            order.setdefault((row.group, row.record.meter), []).append(row)
        elif row.left_out_of is not None:
            key = (row.left_out_of, row.record.meter)
            silent[key] = silent.get(key, 0) + 1
    for (name, meter), count in silent.items():
        kept = len(order.get((name, meter), []))
        notes.append(f"group {name} on meter {meter}: {count} run(s) without readings left "
                     f"out of the statistics (n={kept} measured run(s))")
    groups = []
    for (name, meter), members in order.items():
        energies = [m.record.result.energy_j for m in members if m.record.result is not None]
        group = Group(name, meter, members, summarize(energies),
                      no_readings=silent.get((name, meter), 0))
        for metric in ALL_METRICS:
            values = [m.metric(metric) for m in members]
            if all(v is not None for v in values):
                group.figures[metric] = summarize([v for v in values if v is not None])
        groups.append(group)
    return groups


def _comparisons(groups: list[Group]) -> list[Comparison]:
    """Every pair of repeated groups (n >= 2 each) on the same meter."""
    out = []
    repeated = [g for g in groups if g.energy.n >= 2]
    for i, a in enumerate(repeated):
        for b in repeated[i + 1:]:
            if a.meter != b.meter:
                continue
            best = next(m for m in METRICS if a.has(m) and b.has(m))
            metrics = [best]
            if best.startswith("net_"):
                metrics.append(best.removeprefix("net_"))  # and the gross figure
            metrics += [m for m in LOAD_METRICS if a.has(m) and b.has(m)]
            for metric in metrics:
                va, vb = a.values(metric), b.values(metric)
                if not va or not vb or math.fsum(vb) == 0:
                    continue
                out.append(Comparison(a, b, a.meter, metric, fieller_ratio(va, vb),
                                      welch_p(va, vb)))
    return out
