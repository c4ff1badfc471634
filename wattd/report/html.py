"""``wattd report --html FILE``: one self-contained page (SPEC 9.4).

The one-line conclusions first, then the five figures as inline SVG
(``wattd.report.figures``), then the tables of the text report and its notes.
No script, no external URL in any ``src`` or ``href``, no web font: the page
opens from a file, offline, in any browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from wattd.report.figures import FigureSvg, figures
from wattd.report.model import Report
from wattd.report.render import (
    comparison_table,
    group_table,
    has_load_or_cpu,
    load_table,
    run_table,
)
from wattd.report.words import conclusions, scan_notes

_CSS = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 1.5em auto;
       max-width: 70em; padding: 0 1em; color: #1a1a1a; background: #ffffff; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #cccccc; }
p.head { color: #555555; margin-top: 0; }
ul.conclusions li { margin: 0.3em 0; font-weight: bold; }
figure { margin: 1.2em 0; }
figure svg { width: 100%; height: auto; max-width: 60em; display: block; }
figcaption { color: #555555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #d0d0d0; padding: 0.2em 0.5em; }
th { background: #f2f2f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
ul.notes { color: #555555; font-size: 0.9em; }
"""

_CAPTIONS = {
    "fig-time-per-request": "Bars: mean over the group's runs of the load generator's time "
                            "per request; whiskers: 95 % confidence interval (Student t).",
    "fig-power": "Power drawn during each run, every run aligned at its start; one colour "
                 "per group.",
    "fig-cpu": "CPU of the probed server processes (wattd probe) during each run, % of one "
               "core; one colour per group.",
    "fig-latency-cdf": "Fraction of requests answered within a response time, from the "
                       "percentiles the load generator reported (mean over the group's "
                       "runs at each percentile).",
    "fig-energy-per-unit": "Bars: mean energy per unit of work over the group's runs; "
                           "whiskers: 95 % confidence interval (Student t).",
}


def _numeric(cell: str) -> bool:
    return cell == "-" or cell[:1].isdigit() or (cell[:1] in "-±+" and cell[1:2].isdigit())


def _table(header: Sequence[str], body: Sequence[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for cells in body:
        tds = "".join(
            f'<td class="num">{html.escape(c)}</td>' if _numeric(c)
            else f"<td>{html.escape(c)}</td>" for c in cells)
        rows.append(f"<tr>{tds}</tr>")
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _figure(fig: FigureSvg) -> str:
    caption = html.escape(_CAPTIONS.get(fig.fig_id, ""))
    return f"<figure>{fig.svg}<figcaption>{caption}</figcaption></figure>"


def render_html(report: Report) -> str:
    figs = figures(report)
    s = report.scan.stats
    title = "wattd report"
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>",
             "<body>", f"<h1>{html.escape(title)}</h1>",
             f'<p class="head">journal {html.escape(report.journal)}: {s.readings} readings '
             f"in {s.segments} segment(s), {len(report.rows)} run(s), "
             f"{len(report.groups)} group(s) by {html.escape(report.grouping)}</p>"]
    parts.append("<h2>Conclusions</h2>")
    if report.comparisons:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in conclusions(report))
        parts.append(f'<ul class="conclusions">{items}</ul>')
    else:
        parts.append("<p>No comparison: it takes two groups of at least two closed, "
                     "complete runs each on the same meter.</p>")
    parts.append("<h2>Figures</h2>")
    parts += [_figure(fig) for fig in figs]
    parts.append("<h2>Runs</h2>")
    parts.append(_table(*run_table(report), "runs"))
    if has_load_or_cpu(report):
        parts.append("<h2>Runs: load results and server CPU</h2>")
        parts.append(_table(*load_table(report), "load"))
    if report.groups:
        parts.append(f"<h2>Groups (by {html.escape(report.grouping)}; 95 % CI from "
                     "Student t)</h2>")
        parts.append(_table(*group_table(report), "groups"))
    if report.comparisons:
        parts.append("<h2>Comparisons (ratio a/b, Fieller 95 % CI, Welch p)</h2>")
        parts.append(_table(*comparison_table(report), "comparisons"))
    notes = report.notes + scan_notes(s)
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f'<h2>Notes</h2><ul class="notes">{items}</ul>')
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_html(report: Report, path: str | Path) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")
