"""Report output for people: table (terminal) and markdown; json and csv are in
``wattd.report.render_data``."""

from __future__ import annotations

from collections.abc import Sequence

from wattd.report.model import LOAD_METRICS, METRICS, Group, Report
from wattd.report.render_data import (
    CPU_KEYS,
    LOAD_KEYS,
    cpu_value,
    load_value,
    render_csv,
    render_json,
)
from wattd.report.stats import Summary
from wattd.report.totals import run_totals
from wattd.report.words import conclusions, fmt, metric_words, p_text, scan_notes, unit_word
from wattd.report.words import flag_text as _flag_text

__all__ = ["FORMATS", "render", "render_csv", "render_json", "render_table", "scan_notes"]

FORMATS = ("table", "csv", "json", "markdown")

# -- table and markdown -----------------------------------------------------------

def run_table(report: Report) -> tuple[list[str], list[list[str]]]:
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
                 fmt(row.duration_s),
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
        if row.status == "no data" and not row.record.no_readings:
            flags = (flags + " " + (row.record.note or "no readings")).strip()
        cells.append(flags)
        body.append(cells)
    return header, body


_LOAD_HEADS = {"requests": "requests", "failed": "failed", "rps": "req/s",
               "time_per_request_ms": "ms/request", "latency_ms_p50": "p50_ms",
               "latency_ms_p95": "p95_ms", "latency_ms_p99": "p99_ms", "cpu_s": "cpu_s",
               "cpu_pct_mean": "cpu_%", "rss_bytes_max": "rss_MiB"}


def has_load_or_cpu(report: Report) -> bool:
    return any(row.load is not None or row.cpu is not None for row in report.rows)


def load_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Per run: the load generator's results and the probed server's CPU (SPEC 9.4)."""
    unit = unit_word(report.per_tag)
    header = ["run", "meter", *(_LOAD_HEADS[k] for k in LOAD_KEYS),
              *(_LOAD_HEADS.get(k, f"cpu_ms/{unit}") for k in CPU_KEYS)]
    body = []
    for row in report.rows:
        if row.record.phase is not None:
            continue
        cells = [row.label, row.record.meter]
        for key in LOAD_KEYS:
            value = load_value(row, key)
            counted = key in ("requests", "failed") and value is not None and value.is_integer()
            cells.append(f"{value:,.0f}" if counted and value is not None else fmt(value))
        for key in CPU_KEYS:
            value = cpu_value(row, key)
            if value is not None and key == "rss_bytes_max":
                value /= 1 << 20
            elif value is not None and key == "cpu_s_per_unit":
                value *= 1000
            cells.append(fmt(value))
        body.append(cells)
    return header, body


def _figure(s: Summary) -> list[str]:
    half = None if s.ci95_high is None else s.ci95_high - s.mean
    return [fmt(s.mean), fmt(s.stdev),
            "-" if s.rel_stdev is None else f"{100 * s.rel_stdev:.2f}%",
            "-" if half is None else f"±{fmt(half)}"]


def _best_metric(group: Group) -> str:
    return next(m for m in METRICS if group.has(m))


def group_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Energy (the SPEC figures) and, when it differs, the figure comparisons use."""
    unit = unit_word(report.per_tag)
    short = {"energy_j": "J", "energy_per_unit_j": f"J/{unit}", "net_energy_j": "net_J",
             "net_energy_per_unit_j": f"net_J/{unit}"}
    extra = sorted({_best_metric(g) for g in report.groups} - {"energy_j"},
                   key=METRICS.index)
    header = ["group", "meter", "n", "mean_J", "stdev_J", "rel_stdev", "ci95_J"]
    silent = any(g.no_readings for g in report.groups)
    if silent:
        header.insert(3, "no_readings")  # runs left out: no reading measured them
    for m in extra:
        header += [f"mean {short[m]}", "rel", "ci95"]
    load = [m for m in LOAD_METRICS if any(g.has(m) for g in report.groups)]
    load_heads = {"time_per_request_ms": "ms/request", "cpu_per_unit_s": f"cpu_s/{unit}"}
    for m in load:
        header += [f"mean {load_heads[m]}", "rel", "ci95"]
    body = []
    for g in report.groups:
        cells = [g.group, g.meter, str(g.energy.n), *_figure(g.energy)]
        if silent:
            cells.insert(3, str(g.no_readings))
        for m in extra:
            if g.has(m):
                mean, _, rel, half = _figure(g.figures[m])
                cells += [mean, rel, half]
            else:
                cells += ["-"] * 3
        for m in load:
            if g.has(m):
                mean, _, rel, half = _figure(g.figures[m])
                cells += [mean, rel, half]
            else:
                cells += ["-"] * 3
        body.append(cells)
    return header, body


def comparison_table(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["a", "b", "meter", "compared", "ratio a/b", "ci95 (Fieller)", "p (Welch)"]
    body = []
    for c in report.comparisons:
        ci = ("unbounded" if c.ratio.ci95_low is None or c.ratio.ci95_high is None
              else f"{fmt(c.ratio.ci95_low)} - {fmt(c.ratio.ci95_high)}")
        body.append([c.a.group, c.b.group, c.meter, metric_words(c.metric, report.per_tag),
                     fmt(c.ratio.ratio), ci, p_text(c.p_value)])
    return header, body


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
    out += draw(*run_table(report))
    if has_load_or_cpu(report):
        out.append("")
        out.append(title("Runs: load results and server CPU"))
        if markdown:
            out.append("")
        out += draw(*load_table(report))
    if report.groups:
        out.append("")
        out.append(title(f"Groups (by {report.grouping}; 95 % CI from Student t)"))
        if markdown:
            out.append("")
        out += draw(*group_table(report))
    if report.comparisons:
        out.append("")
        out.append(title("Comparisons"))
        if markdown:
            out.append("")
        out += draw(*comparison_table(report))
        out.append("")
        for line in conclusions(report):
            out.append(f"**{line}**" if markdown else line)
    # SPEC 10: per-run totals
    if any(t.meters > 1 or t.missing for t in run_totals(report)):
        out += ["", title("Totals per run (over meters and hosts)")] + ([""] if markdown else [])
        out += draw(*totals_table(report))
    return "\n".join(out) + "\n"


def render(report: Report, form: str) -> str:
    """``table``, ``markdown``, ``json`` or ``csv``."""
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
            f"({fmt(t.partial_energy_j)} without missing)" if t.measured else "-"
        body.append([t.run, str(t.meters), str(t.hosts), energy, fmt(t.duration_s),
                     fmt(t.mean_w), ", ".join(t.missing) or "-"])
    return header, body
