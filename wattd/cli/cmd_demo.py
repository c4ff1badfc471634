"""wattd demo: the Raspberry Pi experiment with a simulated meter, no hardware,
no database, under a minute; prints the report, writes it as an HTML page with
its figures (DIR/report.html, when the 'plot' extra is installed) and says how
to load the journal.

Exit status: 0 done; 1 the demo could not run; 2 usage error (--dir not ours).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wattd.report.demo import DEFAULT_TIME_SCALE, PI_REQUESTS, DemoError, loading_hints, run_demo
from wattd.report.experiment import read_experiment
from wattd.report.model import ReportOptions, build_report
from wattd.report.plot import PlotUnavailableError, check_available
from wattd.report.render import render, scan_notes
from wattd.report.scan import scan_journal


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("wattd-demo"),
                        help="where the config, profile, daemon log and journal go "
                             "(default: ./wattd-demo)")
    parser.add_argument("--time-scale", type=int, default=DEFAULT_TIME_SCALE,
                        help=f"divide the Pi's durations by this (a divisor of {PI_REQUESTS}; "
                             f"default {DEFAULT_TIME_SCALE})")
    parser.add_argument("--format", choices=("table", "markdown", "json", "csv"),
                        default="table", help="format of the final report")


def execute(args: argparse.Namespace) -> int:
    if args.time_scale <= 0 or PI_REQUESTS % args.time_scale:
        print(f"wattd demo: --time-scale must divide {PI_REQUESTS}", file=sys.stderr)
        return 2
    say = print if args.format in ("table", "markdown") else (
        lambda text: print(text, file=sys.stderr))
    try:
        journal = run_demo(args.dir, time_scale=args.time_scale, say=say)
    except DemoError as exc:
        print(f"wattd demo: {exc}", file=sys.stderr)
        return 1
    scan = scan_journal(journal, plot=True)
    report = build_report(scan, ReportOptions(baseline="idle"), journal=str(journal),
                          experiment=read_experiment(journal))
    say("")
    sys.stdout.write(render(report, args.format))
    for note in report.notes + scan_notes(scan.stats):
        print(f"note: {note}", file=sys.stderr)
    say("")
    page = journal.parent / "report.html"
    try:
        check_available("the HTML report")
    except PlotUnavailableError as exc:
        say(f"No HTML report: {exc}")
    else:
        from wattd.report.html import write_html

        write_html(report, page)
        say(f"HTML report (figures and tables, opens offline): {page}")
    for line in loading_hints(journal):
        say(line)
    return 0
