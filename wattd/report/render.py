"""Report output: table (terminal), csv (runs), json (SPEC 5 shape), markdown."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from wattd.report.model import METRICS, Comparison, Group, Report, RunRow
from wattd.report.records import ScanStats
from wattd.report.stats import Summary
from wattd.report.totals import run_totals, total_comparisons_json, total_groups_json, totals_json

FORMATS = ("table", "csv", "json", "markdown")

_METRIC_WORDS = {
    "energy_j": "energy",
    "net_energy_j": "net energy",
    "energy_per_unit_j": "energy per {unit}",
    "net_energy_per_unit_j": "net energy per {unit}",
}


def fmt(value: float | None, unit: str = "") -> str:
    """A number for people: about 4 significant digits, no exponent for usual sizes."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.3f}"
    elif magnitude >= 0.001 or magnitude == 0:
        text = f"{value:.4g}" if magnitude else "0"
    else:
        text = f"{value:.3e}"
    return f"{text}{unit}"


def unit_word(per_tag: str) -> str:
    """``requests`` -> ``request``: the unit of work a per-unit figure is for."""
    if per_tag.endswith("ies"):
        return per_tag[:-3] + "y"
    if per_tag.endswith("s") and not per_tag.endswith("ss"):
        return per_tag[:-1]
    return per_tag


def metric_words(metric: str, per_tag: str) -> str:
    return _METRIC_WORDS[metric].format(unit=unit_word(per_tag))


def _flag_text(row: RunRow) -> str:
    parts = []
    for key, value in row.flags().items():
        if value is True:
            parts.append(key)
        else:
            parts.append(f"{key.removesuffix('_s')}={fmt(float(value))}s")
    return " ".join(parts)


# -- json ---------------------------------------------------------------------

def _summary_json(s: Summary, suffix: str) -> dict[str, Any]:
    return {f"mean{suffix}": s.mean, f"stdev{suffix}": s.stdev, "rel_stdev": s.rel_stdev,
            "ci95_low_j": s.ci95_low, "ci95_high_j": s.ci95_high}


def run_json(row: RunRow, report: Report) -> dict[str, Any]:
    r = row.record
    res = r.result
    out: dict[str, Any] = {
        "run": r.run,
        "meter": r.meter,
        "start_ns": r.start_ns,
        "stop_ns": r.stop_ns,
        "duration_s": None if res is None else res.duration_s,
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
    # Beyond the SPEC keys: what a careful reader needs to trust the figure.
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
    }
    for metric, summary in group.figures.items():
        if metric != "energy_j":
            out[metric] = _summary_json(summary, "_j")
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


# -- csv ----------------------------------------------------------------------

CSV_COLUMNS = ("run", "phase", "meter", "start_ns", "stop_ns", "duration_s", "energy_j",
               "mean_w", "min_w", "max_w", "samples", "counter_energy_j", "net_energy_j",
               "units", "energy_per_unit_j", "net_energy_per_unit_j", "group", "status",
               "flags", "tags")


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
            _raw(None if res is None else res.duration_s),
            _raw(None if res is None else res.energy_j),
            _raw(None if res is None else res.mean_w),
            _raw(None if res is None else res.min_w),
            _raw(None if res is None else res.max_w),
            "" if res is None else res.samples,
            _raw(r.counter_energy_j), _raw(row.net_energy_j), _raw(row.units),
            _raw(row.energy_per_unit_j), _raw(row.net_energy_per_unit_j),
            row.group or "", row.status, _flag_text(row),
            " ".join(f"{k}={v}" for k, v in sorted(r.tags.items())),
        ])
    return buf.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)


# -- table and markdown -----------------------------------------------------------

def _run_table(report: Report) -> tuple[list[str], list[list[str]]]:
    unit = unit_word(report.per_tag)
    has_units = any(row.units is not None for row in report.rows)
    has_net = report.baseline is not None
    has_counter = any(row.record.counter_energy_j is not None for row in report.rows)
    header = ["run", "meter", "duration_s", "energy_j", "mean_w", "min_w", "max_w", "samples"]
    if has_counter:
        header.append("counter_j")
    if has_net:
        header.append("net_j")
    if has_units:
        header.append(f"J/{unit}")
        if has_net:
            header.append(f"net_J/{unit}")
    header.append("flags")
    body = []
    for row in report.rows:
        res = row.record.result
        cells = [row.label, row.record.meter,
                 fmt(None if res is None else res.duration_s),
                 fmt(None if res is None else res.energy_j),
                 fmt(None if res is None else res.mean_w),
                 fmt(None if res is None else res.min_w),
                 fmt(None if res is None else res.max_w),
                 "-" if res is None else str(res.samples)]
        if has_counter:
            cells.append(fmt(row.record.counter_energy_j))
        if has_net:
            cells.append(fmt(row.net_energy_j))
        if has_units:
            cells.append(fmt(row.energy_per_unit_j))
            if has_net:
                cells.append(fmt(row.net_energy_per_unit_j))
        flags = _flag_text(row)
        if row.status == "no data":
            flags = (flags + " " + (row.record.note or "no readings")).strip()
        cells.append(flags)
        body.append(cells)
    return header, body


def _figure(s: Summary) -> list[str]:
    half = None if s.ci95_high is None else s.ci95_high - s.mean
    return [fmt(s.mean), fmt(s.stdev),
            "-" if s.rel_stdev is None else f"{100 * s.rel_stdev:.2f}%",
            "-" if half is None else f"±{fmt(half)}"]


def _best_metric(group: Group) -> str:
    return next(m for m in METRICS if group.has(m))


def _group_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Energy (the SPEC figures) and, when it differs, the figure comparisons use."""
    unit = unit_word(report.per_tag)
    short = {"energy_j": "J", "energy_per_unit_j": f"J/{unit}", "net_energy_j": "net_J",
             "net_energy_per_unit_j": f"net_J/{unit}"}
    extra = sorted({_best_metric(g) for g in report.groups} - {"energy_j"},
                   key=METRICS.index)
    header = ["group", "meter", "n", "mean_J", "stdev_J", "rel_stdev", "ci95_J"]
    for m in extra:
        header += [f"mean {short[m]}", "rel", "ci95"]
    body = []
    for g in report.groups:
        cells = [g.group, g.meter, str(g.energy.n), *_figure(g.energy)]
        for m in extra:
            if g.has(m):
                mean, _, rel, half = _figure(g.figures[m])
                cells += [mean, rel, half]
            else:
                cells += ["-"] * 3
        body.append(cells)
    return header, body


def _comparison_table(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["a", "b", "meter", "compared", "ratio a/b", "ci95 (Fieller)", "p (Welch)"]
    body = []
    for c in report.comparisons:
        ci = ("unbounded" if c.ratio.ci95_low is None or c.ratio.ci95_high is None
              else f"{fmt(c.ratio.ci95_low)} - {fmt(c.ratio.ci95_high)}")
        body.append([c.a.group, c.b.group, c.meter, metric_words(c.metric, report.per_tag),
                     fmt(c.ratio.ratio), ci, _p_text(c.p_value)])
    return header, body


def _p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def summary_line(c: Comparison, per_tag: str) -> str:
    """The plain-English answer: which one needs less energy, and how sure we are."""
    unit = unit_word(per_tag)
    per = f" per {unit}" if "per_unit" in c.metric else ""
    net = "net " if c.metric.startswith("net") else ""
    lo_group, hi_group = (c.a, c.b) if c.ratio.ratio <= 1 else (c.b, c.a)
    lo = lo_group.figures[c.metric]
    hi = hi_group.figures[c.metric]
    factor = hi.mean / lo.mean if lo.mean else float("inf")

    def pm(s: Summary) -> str:
        if s.ci95_high is None:
            return f" (n={s.n}, no interval)"
        return f" (+/- {fmt(s.ci95_high - s.mean)} at 95 %)"

    if c.ratio.ci95_low is not None and c.ratio.ci95_high is not None:
        if c.ratio.ratio <= 1:
            k_lo, k_hi = 1 / c.ratio.ci95_high, 1 / c.ratio.ci95_low
        else:
            k_lo, k_hi = c.ratio.ci95_low, c.ratio.ci95_high
        interval = f", 95 % CI {fmt(k_lo)} to {fmt(k_hi)}"
    else:
        interval = ""
    p = "" if c.p_value is None else f", Welch p = {_p_text(c.p_value)}"
    meter = f" [meter {c.meter}]"
    return (f"{lo_group.group} used {fmt(lo.mean)} {net}J{per}{pm(lo)}, "
            f"{hi_group.group} {fmt(hi.mean)} {net}J{pm(hi)}: {lo_group.group} needs "
            f"{fmt(factor)} x less {net}energy{interval}{p}{meter}")


def _numeric(cell: str) -> bool:
    return cell == "-" or cell[:1].isdigit() or (cell[:1] in "-±+" and cell[1:2].isdigit())


def _aligned(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in header]
    for cells in body:
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], len(cell))
    # Numbers right-aligned, names left.
    right = [bool(body) and all(_numeric(cells[i]) for cells in body)
             for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(widths[i]) if right[i] else cell.ljust(widths[i])
                         for i, cell in enumerate(cells)).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(c) for c in body)]


def _markdown(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in body]
    return lines


def scan_notes(s: ScanStats) -> list[str]:
    """What the journal scan skipped or could not read, for people."""
    notes = []
    if s.torn_lines:
        notes.append(f"{s.torn_lines} torn line(s) (no newline at the end of a segment) "
                     "skipped")
    if s.bad_lines:
        notes.append(f"{s.bad_lines} line(s) that are not valid wattd line protocol skipped")
    if s.unknown:
        listed = ", ".join(f"{name} ({n})" for name, n in s.unknown.most_common(10))
        notes.append(f"lines of other measurements ignored: {listed}")
    notes.extend(f"damaged segment, read up to the damage: {d}" for d in s.damaged_segments)
    notes.extend(s.notes)
    return notes


def _head(report: Report) -> str:
    s = report.scan.stats
    base = ""
    if report.baseline is not None:
        watts = ", ".join(f"{m} {fmt(w)} W" for m, w in sorted(report.baseline_w.items()))
        base = f"; baseline {report.baseline}: {watts}"
    return (f"journal {report.journal}: {s.readings} readings in {s.segments} segment(s), "
            f"{len(report.rows)} run(s) selected{base}")


def render_table(report: Report, *, markdown: bool = False) -> str:
    draw = _markdown if markdown else _aligned
    out: list[str] = []
    title = (lambda t: f"## {t}") if markdown else (lambda t: t)
    out.append(_head(report))
    out.append("")
    out.append(title("Runs"))
    if markdown:
        out.append("")
    out += draw(*_run_table(report))
    if report.groups:
        out.append("")
        out.append(title(f"Groups (by {report.grouping}; 95 % CI from Student t)"))
        if markdown:
            out.append("")
        out += draw(*_group_table(report))
    if report.comparisons:
        out.append("")
        out.append(title("Comparisons"))
        if markdown:
            out.append("")
        out += draw(*_comparison_table(report))
        out.append("")
        for c in report.comparisons:
            line = summary_line(c, report.per_tag)
            out.append(f"**{line}**" if markdown else line)
    # SPEC 10: per-run totals
    if any(t.meters > 1 or t.missing for t in run_totals(report)):
        out += ["", title("Totals per run (over meters and hosts)")] + ([""] if markdown else [])
        out += draw(*totals_table(report))
    return "\n".join(out) + "\n"


def render(report: Report, form: str) -> str:
    if form == "json":
        return render_json(report)
    if form == "csv":
        return render_csv(report)
    if form == "markdown":
        return render_table(report, markdown=True)
    return render_table(report)


def totals_table(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["run", "meters", "hosts", "energy J", "duration s", "mean W", "missing"]
    body = []
    for t in run_totals(report):
        energy = fmt(t.energy_j) if t.energy_j is not None else \
            f"({fmt(t.partial_energy_j)} without missing)"
        body.append([t.run, str(t.meters), str(t.hosts), energy, fmt(t.duration_s),
                     fmt(t.mean_w), ", ".join(t.missing) or "-"])
    return header, body
