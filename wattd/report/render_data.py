"""Report output for programs: json (the SPEC 5 and 9.4 shape) and csv (one row per run)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from wattd.report.model import Comparison, Group, Report, RunRow
from wattd.report.stats import Summary
from wattd.report.totals import total_comparisons_json, total_groups_json, totals_json
from wattd.report.words import METRIC_SUFFIX, flag_text, scan_notes

# Load results a run row carries (SPEC 9.4), then its CPU figures.
LOAD_KEYS = ("requests", "failed", "rps", "time_per_request_ms", "latency_ms_p50",
             "latency_ms_p95", "latency_ms_p99")
CPU_KEYS = ("cpu_s", "cpu_pct_mean", "rss_bytes_max", "cpu_s_per_unit")


def load_value(row: RunRow, key: str) -> float | None:
    if key.startswith("latency_ms_p"):
        return row.latency_ms(int(key.removeprefix("latency_ms_p")))
    return row.result(key)


def cpu_value(row: RunRow, key: str) -> float | None:
    if key == "cpu_s_per_unit":
        return row.cpu_s_per_unit
    if row.cpu is None:
        return None
    value: float | None = getattr(row.cpu, key)
    return value


def _summary_json(s: Summary, suffix: str) -> dict[str, Any]:
    return {f"mean{suffix}": s.mean, f"stdev{suffix}": s.stdev, "rel_stdev": s.rel_stdev,
            f"ci95_low{suffix}": s.ci95_low, f"ci95_high{suffix}": s.ci95_high, "n": s.n}


def run_json(row: RunRow, report: Report) -> dict[str, Any]:
    r = row.record
    res = r.result
    out: dict[str, Any] = {
        "run": r.run,
        "meter": r.meter,
        "start_ns": r.start_ns,
        "stop_ns": r.stop_ns,
        "duration_s": row.duration_s,
        "energy_j": None if res is None else res.energy_j,
        "mean_w": None if res is None else res.mean_w,
        "min_w": None if res is None else res.min_w,
        "max_w": None if res is None else res.max_w,
        "samples": None if res is None else res.samples,
        "tags": dict(r.tags),
    }
    if report.baseline is not None:
        out["net_energy_j"] = row.net_energy_j
    if row.units is not None:
        out["energy_per_unit_j"] = row.energy_per_unit_j
        if report.baseline is not None:
            out["net_energy_per_unit_j"] = row.net_energy_per_unit_j
    if row.load is not None:
        for key in LOAD_KEYS:
            out[key] = load_value(row, key)
        out["results"] = dict(row.load.results)
        out["latency_ms"] = [[q, ms] for q, ms in sorted(row.load.latency_ms.items())]
    if row.cpu is not None:
        for key in CPU_KEYS:
            out[key] = cpu_value(row, key)
    # Beyond the SPEC keys: what a careful reader needs to trust the figure.
    out["units"] = row.units
    out["phase"] = r.phase
    out["status"] = row.status
    out["flags"] = row.flags()
    out["counter_energy_j"] = r.counter_energy_j
    out["daemon_energy_j"] = r.daemon_energy_j
    out["group"] = row.group
    if r.is_open:
        out["integrated_to_ns"] = r.integrated_to_ns
    return out


def group_json(group: Group) -> dict[str, Any]:
    s = group.energy
    out: dict[str, Any] = {
        "group": group.group,
        "n": s.n,
        "mean_energy_j": s.mean,
        "stdev_energy_j": s.stdev,
        "rel_stdev": s.rel_stdev,
        "ci95_low_j": s.ci95_low,
        "ci95_high_j": s.ci95_high,
        "meter": group.meter,
        "runs": [row.record.run for row in group.rows],
        # Runs of the group left out of n and every figure: no reading measured them.
        "no_readings": group.no_readings,
    }
    for metric, summary in group.figures.items():
        if metric != "energy_j":
            out[metric] = _summary_json(summary, METRIC_SUFFIX.get(metric, "_j"))
    return out


def comparison_json(c: Comparison) -> dict[str, Any]:
    return {"a": c.a.group, "b": c.b.group, "ratio": c.ratio.ratio,
            "ci95_low": c.ratio.ci95_low, "ci95_high": c.ratio.ci95_high,
            "p_value": c.p_value, "meter": c.meter, "metric": c.metric}


def render_json(report: Report) -> str:
    doc = {
        "runs": [run_json(row, report) for row in report.rows],
        "groups": [group_json(g) for g in report.groups],
        "comparisons": [comparison_json(c) for c in report.comparisons],
        "notes": report.notes + scan_notes(report.scan.stats),
    }
    # SPEC 10: per-run totals over meters and hosts (wattd.report.totals)
    doc["totals"] = totals_json(report)
    doc["total_groups"] = total_groups_json(report)
    doc["total_comparisons"] = total_comparisons_json(report)
    return json.dumps(doc, indent=2) + "\n"


CSV_COLUMNS = ("run", "phase", "meter", "start_ns", "stop_ns", "duration_s", "energy_j",
               "mean_w", "min_w", "max_w", "samples", "counter_energy_j", "net_energy_j",
               "units", "energy_per_unit_j", "net_energy_per_unit_j", "group", "status",
               "flags", "tags", *LOAD_KEYS, *CPU_KEYS)


def render_csv(report: Report) -> str:
    """One row per run and meter (groups and comparisons: use json or table)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        r = row.record
        res = r.result
        writer.writerow([
            r.run, r.phase or "", r.meter, r.start_ns, "" if r.stop_ns is None else r.stop_ns,
            _raw(row.duration_s),
            _raw(None if res is None else res.energy_j),
            _raw(None if res is None else res.mean_w),
            _raw(None if res is None else res.min_w),
            _raw(None if res is None else res.max_w),
            "" if res is None else res.samples,
            _raw(r.counter_energy_j), _raw(row.net_energy_j), _raw(row.units),
            _raw(row.energy_per_unit_j), _raw(row.net_energy_per_unit_j),
            row.group or "", row.status, flag_text(row),
            " ".join(f"{k}={v}" for k, v in sorted(r.tags.items())),
            *(_raw(load_value(row, key)) for key in LOAD_KEYS),
            *(_raw(cpu_value(row, key)) for key in CPU_KEYS),
        ])
    return buf.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)
