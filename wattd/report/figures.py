"""The five figures of the HTML report (SPEC 9.4), as inline SVG from matplotlib.

(1) mean time per request per group with its 95 % CI; (2) power over time per
run, aligned at the start; (3) the probed server's CPU % over time per run;
(4) the response-time distribution per group, a CDF from the percentiles;
(5) energy per unit of work per group with its 95 % CI.

Colours belong to groups and are the same in every figure: groups take the
palette in report order, then the runs outside groups (the baseline) by
name. A figure whose data is missing (no load results, no probe) is still
drawn, with a line saying what to record.

Machine-readable marks, for tests and scripts reading the page: each figure's
``<svg>`` has a stable ``id`` (``fig-time-per-request``, ``fig-power``,
``fig-cpu``, ``fig-latency-cdf``, ``fig-energy-per-unit``), ``data-runs``
(curves drawn, one per run) and ``data-groups`` (the groups in the order
drawn, ``|``-separated); each plotted curve or bar is a ``<g>`` with
``data-run`` and/or ``data-group`` and a ``<title>`` (a tooltip). Element ids
inside a figure are prefixed with the figure's id, so the inline SVGs of one
page never share an id.

matplotlib (the ``plot`` extra) is imported on use only.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wattd.report.model import METRICS, Group, Report, RunRow, group_name
from wattd.report.words import unit_word

FIGURE_IDS = ("fig-time-per-request", "fig-power", "fig-cpu", "fig-latency-cdf",
              "fig-energy-per-unit")
_SIZE_IN = (9.0, 4.2)
_RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "wattd", "font.size": 10.0,
       "axes.titlesize": 12.0, "axes.titleweight": "bold", "legend.fontsize": 9.0}
# Quantiles the well-known result keys stand for, when no wattd_latency point has them.
_RESULT_QUANTILES = {"latency_ms_p50": 50.0, "latency_ms_p90": 90.0, "latency_ms_p95": 95.0,
                     "latency_ms_p99": 99.0, "latency_ms_max": 100.0}


@dataclass(slots=True)
class FigureSvg:
    fig_id: str
    title: str
    svg: str
    runs: int = 0
    groups: list[str] = field(default_factory=list)


def _plain(text: str) -> str:
    """A label as plain text: matplotlib reads $...$ as mathtext (a tag value may hold $)."""
    return text.replace("$", r"\$")


def colour_key(row: RunRow) -> str:
    return row.group if row.group is not None else group_name(row.record.run)


def group_label(group: Group, report: Report) -> str:
    several_meters = len({g.meter for g in report.groups}) > 1
    return f"{group.group} ({group.meter})" if several_meters else group.group


def palette(report: Report) -> dict[str, str]:
    """Colour of each group (and of each run outside groups), by name."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    keys: list[str] = []
    for g in report.groups:
        if g.group not in keys:
            keys.append(g.group)
    for row in report.rows:
        key = colour_key(row)
        if key not in keys:
            keys.append(key)
    cmap = colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {key: to_hex(cmap(i % cmap.N)) for i, key in enumerate(keys)}


def _finish(fig: Any, fig_id: str, title: str, marks: dict[str, dict[str, str]],
            runs: int, groups: Sequence[str]) -> FigureSvg:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.DOTALL)
    svg = re.sub(r' xmlns(:xlink)?="[^"]*"', "", svg)
    # Ids unique within the page: prefix every id and every reference to one.
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{fig_id}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{fig_id}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{fig_id}-\1"', svg)
    for gid, attrs in marks.items():
        data = "".join(f' data-{k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
        tip = html.escape(attrs.get("run") or attrs.get("group") or "")
        svg = svg.replace(f'<g id="{fig_id}-{gid}">',
                          f'<g id="{fig_id}-{gid}"{data}><title>{tip}</title>', 1)
    root = (f'<svg id="{fig_id}" class="figure" role="img" '
            f'aria-label="{html.escape(title, quote=True)}" data-runs="{runs}" '
            f'data-groups="{html.escape("|".join(groups), quote=True)}" ')
    svg = root + svg[len("<svg "):]
    return FigureSvg(fig_id, title, svg, runs, list(groups))


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(report: Report, colours: dict[str, str], fig_id: str, title: str, metric: str,
          scale: float, ylabel: str, missing: str) -> FigureSvg:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = Figure(figsize=_SIZE_IN, layout="constrained")
    ax = fig.subplots()
    groups = [g for g in report.groups if g.has(metric)]
    marks: dict[str, dict[str, str]] = {}
    if not groups:
        _empty(ax, missing)
    else:
        labels = [group_label(g, report) for g in groups]
        means = [g.figures[metric].mean * scale for g in groups]
        lows, highs = [], []
        for g, mean in zip(groups, means, strict=True):
            s = g.figures[metric]
            lows.append(mean - s.ci95_low * scale if s.ci95_low is not None else 0.0)
            highs.append(s.ci95_high * scale - mean if s.ci95_high is not None else 0.0)
        x = list(range(len(groups)))
        bars = ax.bar(x, means, color=[colours[g.group] for g in groups], width=0.6,
                      yerr=[lows, highs], capsize=6, ecolor="#222222",
                      error_kw={"elinewidth": 1.2})
        for i, (bar, g) in enumerate(zip(bars, groups, strict=True)):
            bar.set_gid(f"bar-{i}")
            s = g.figures[metric]
            marks[f"bar-{i}"] = {"group": labels[i], "mean": repr(s.mean), "n": str(s.n)}
        ax.set_xticks(x, [_plain(lab) for lab in labels],
                      rotation=20 if len(groups) > 4 else 0)
        ax.set_xlabel("group")
        handles: list[Any] = [
            Patch(color=colours[g.group], label=_plain(f"{lab} (n={g.figures[metric].n})"))
            for g, lab in zip(groups, labels, strict=True)]
        handles.append(Line2D([], [], color="#222222", marker="_", markersize=12,
                              linestyle="none", label="95 % CI (Student t)"))
        ax.legend(handles=handles, loc="best")
        ax.grid(visible=True, axis="y", alpha=0.3)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _finish(fig, fig_id, title, marks, 0,
                   [group_label(g, report) for g in groups])


def time_per_request_figure(report: Report, colours: dict[str, str]) -> FigureSvg:
    return _bars(report, colours, "fig-time-per-request",
                 "Mean time per request per group", "time_per_request_ms", 1.0,
                 "time per request (ms)",
                 "no load results in these runs (wattd exec, or wattd mark result)")


def energy_per_unit_figure(report: Report, colours: dict[str, str]) -> FigureSvg:
    unit = unit_word(report.per_tag)
    # The figure the comparisons use: the most specific one every repeated group has.
    repeated = [g for g in report.groups if g.energy.n >= 2] or report.groups
    metric = next((m for m in METRICS if repeated and all(g.has(m) for g in repeated)),
                  "energy_j")
    scale = 1.0
    values = [g.figures[metric].mean for g in report.groups if g.has(metric)]
    prefix = ""
    if values and max(abs(v) for v in values) < 1.0:
        scale, prefix = 1000.0, "m"
    what = {"net_energy_per_unit_j": f"net energy per {unit} ({prefix}J, above the baseline)",
            "energy_per_unit_j": f"energy per {unit} ({prefix}J)",
            "net_energy_j": f"net energy per run ({prefix}J, above the baseline)",
            "energy_j": f"energy per run ({prefix}J)"}[metric]
    title = ("Energy per unit of work per group" if "per_unit" in metric
             else "Energy per run per group (no unit count: tag or result 'requests')")
    return _bars(report, colours, "fig-energy-per-unit", title, metric, scale, what,
                 "no closed, complete runs in groups")


def _over_time(report: Report, colours: dict[str, str], fig_id: str, title: str,
               ylabel: str, curves: list[tuple[RunRow, str, list[tuple[float, float]]]],
               missing: str, *, marker: str = "", steps: bool = False) -> FigureSvg:
    from matplotlib.figure import Figure

    fig = Figure(figsize=_SIZE_IN, layout="constrained")
    ax = fig.subplots()
    marks: dict[str, dict[str, str]] = {}
    seen: list[str] = []
    runs = {id(row) for row, _, _ in curves}
    for i, (row, series, points) in enumerate(curves):
        key = colour_key(row)
        label = "_nolegend_"
        if key not in seen:
            seen.append(key)
            label = key if row.group is not None else f"{key} (not in a group)"
        (line,) = ax.plot([t for t, _ in points], [v for _, v in points],
                          color=colours[key], linewidth=1.0, alpha=0.75,
                          label=_plain(label),
                          linestyle="-" if row.group is not None else "--", marker=marker,
                          markersize=2.5, drawstyle="steps-pre" if steps else "default")
        line.set_gid(f"run-{i}")
        marks[f"run-{i}"] = {"run": row.label, "group": key, "meter": row.record.meter}
        if series:
            marks[f"run-{i}"]["series"] = series
    if not curves:
        _empty(ax, missing)
    else:
        ax.set_xlabel("time since run start (s)")
        ax.legend(loc="best", ncols=2 if len(seen) > 4 else 1)
        ax.grid(visible=True, alpha=0.3)
        longest = max(_duration_s(r) for r, _, _ in curves)
        ax.set_xlim(0.0, longest * 1.02 if longest > 0 else None)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _finish(fig, fig_id, title, marks, len(runs), seen)


def _duration_s(row: RunRow) -> float:
    r = row.record
    end = r.stop_ns if r.stop_ns is not None else r.integrated_to_ns
    return 0.0 if end is None else (end - r.start_ns) / 1e9


def _runs_to_draw(report: Report) -> list[RunRow]:
    return [row for row in report.rows if row.record.phase is None]


def power_figure(report: Report, colours: dict[str, str]) -> FigureSvg:
    curves = []
    for row in _runs_to_draw(report):
        r = row.record
        if r.plot:
            curves.append((row, "", [((t - r.start_ns) / 1e9, p) for t, p in r.plot]))
    return _over_time(report, colours, "fig-power",
                      "Power over time per run (aligned at each run's start)", "power (W)",
                      curves, "no readings inside the runs")


def cpu_figure(report: Report, colours: dict[str, str]) -> FigureSvg:
    curves = []
    for row in _runs_to_draw(report):
        if row.cpu is not None:
            curves += [(row, label, points) for label, points in row.cpu.curves]
    return _over_time(report, colours, "fig-cpu", "Server CPU over time per run",
                      "server CPU (% of one core)", curves,
                      "no CPU samples in these runs (run wattd probe on the server)",
                      marker="o", steps=True)  # a sample's cpu_pct is over the interval before it


def distribution(rows: Sequence[RunRow]) -> list[tuple[float, float]]:
    """A group's response-time distribution: (percentile, ms) for each percentile
    every run has, the mean over the runs of its response time at that percentile."""
    per_run = []
    for row in rows:
        if row.load is None:
            return []
        points = dict(row.load.latency_ms)
        for key, q in _RESULT_QUANTILES.items():
            value = row.load.results.get(key)
            if value is not None:
                points.setdefault(q, value)
        per_run.append(points)
    if not per_run:
        return []
    common = set(per_run[0]).intersection(*per_run[1:])
    return [(q, math.fsum(p[q] for p in per_run) / len(per_run)) for q in sorted(common)]


def latency_figure(report: Report, colours: dict[str, str]) -> FigureSvg:
    from matplotlib.figure import Figure

    fig = Figure(figsize=_SIZE_IN, layout="constrained")
    ax = fig.subplots()
    title = "Response-time distribution per group (CDF from the percentiles)"
    marks: dict[str, dict[str, str]] = {}
    drawn: list[str] = []
    all_ms: list[float] = []
    for g in report.groups:
        points = distribution(g.rows)
        if len(points) < 2:
            continue
        label = group_label(g, report)
        ms = [v for _, v in points]
        all_ms += ms
        (line,) = ax.plot(ms, [q / 100 for q, _ in points], color=colours[g.group],
                          drawstyle="default", marker="o", markersize=3, linewidth=1.4,
                          label=_plain(f"{label} (n={len(g.rows)})"))
        line.set_gid(f"group-{len(drawn)}")
        marks[f"group-{len(drawn)}"] = {"group": label, "points": str(len(points))}
        drawn.append(label)
    if not drawn:
        _empty(ax, "no response-time percentiles in these runs (ab, wrk, JMeter, k6 "
               "results through wattd exec)")
    else:
        positive = [v for v in all_ms if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_xscale("log")
        ax.set_xlabel("response time (ms)")
        ax.set_ylim(0.0, 1.02)
        ax.legend(loc="lower right")
        ax.grid(visible=True, alpha=0.3)
    ax.set_ylabel("fraction of requests served within")
    ax.set_title(title)
    return _finish(fig, "fig-latency-cdf", title, marks, 0, drawn)


def figures(report: Report) -> list[FigureSvg]:
    """The five figures, in SPEC order."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        colours = palette(report)
        return [time_per_request_figure(report, colours), power_figure(report, colours),
                cpu_figure(report, colours), latency_figure(report, colours),
                energy_per_unit_figure(report, colours)]
