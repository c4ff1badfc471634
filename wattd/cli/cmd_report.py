"""wattd report: joules per run from the journal, repeated-run statistics, comparisons.

Exit status: 0 report printed; 1 nothing to report (no segments, no runs, an
empty selection, an unknown baseline, --plot or --html without matplotlib); 2 usage or
config error (no journal given, the journal directory does not exist).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wattd.config import default_config_path, load_config
from wattd.errors import UsageError
from wattd.journal.segments import list_segments
from wattd.report.experiment import read_experiment
from wattd.report.model import ReportError, ReportOptions, build_report
from wattd.report.plot import PlotUnavailableError, check_available, plot_report
from wattd.report.render import render, scan_notes
from wattd.report.scan import scan_journal

EPILOG = """\
Runs come from the journal's start/stop markers; energy is the integral of
power over each run's exact [start, stop], as the daemon computes it online.
Runs without a stop (a journal copied mid-run) are integrated up to the
meter's last reading and flagged 'open'; open, aborted and clock-stepped runs
are listed but left out of the statistics. Notes (torn lines, unknown
measurements, stops without a start) go to stderr, or into 'notes' with
--format json. csv prints one row per run and meter.

Load results (wattd_result, wattd_latency: `wattd exec`, `wattd mark result`)
and server CPU samples (wattd_cpu: `wattd probe`) in the journal join their
runs: time per request, percentiles, CPU seconds over exactly [start, stop];
the `requests` result is the unit count when no tag gives one. Groups and
comparisons then cover time per request and CPU per unit too. --html FILE
writes one self-contained page with the tables and the five figures.

exit status: 0 report printed; 1 nothing to report (no segments, no runs, no
run matching --run, unknown --baseline, --plot/--html without matplotlib); 2 usage or
config error (no journal given, the journal directory does not exist).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    src = parser.add_mutually_exclusive_group()
    src.add_argument("-c", "--config", metavar="FILE",
                     help="read journal.dir from this config (default: $WATTD_CONFIG, then "
                          "/etc/wattd/config.yaml)")
    src.add_argument("--journal", metavar="DIR", help="journal directory to read")
    src.add_argument("--influx", metavar="URL",
                     help="read the wattd_run points of every daemon from this database: "
                          "InfluxDB 1.x (needs --database) or VictoriaMetrics")
    parser.add_argument("--database", metavar="DB",
                        help="with --influx: the InfluxDB database (on VictoriaMetrics: the "
                             "'db' label, optional)")
    parser.add_argument("--run", action="append", default=[], metavar="GLOB",
                        help="only runs whose name matches (repeatable, shell-style glob)")
    parser.add_argument("--baseline", metavar="RUN",
                        help="net energy above this run's mean power (e.g. an idle run)")
    parser.add_argument("--per", metavar="TAG",
                        help="energy per unit of work from this numeric run tag "
                             "(default: the 'requests' tag when present)")
    parser.add_argument("--group-by", metavar="TAG",
                        help="group repeated runs by this tag (default: the name without "
                             "a trailing -N/_N/.N)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw power over time per run (needs the 'plot' extra)")
    parser.add_argument("--html", metavar="FILE",
                        help="write the report as one self-contained HTML page with its "
                             "figures (needs the 'plot' extra)")
    parser.add_argument("--format", choices=("table", "csv", "json", "markdown"),
                        default="table")


def _journal_dir(args: argparse.Namespace) -> Path:
    if args.journal:
        path = Path(args.journal)
    else:
        config_path = args.config or default_config_path()
        if args.config is None and not Path(config_path).exists():
            raise UsageError(f"no journal to read: give --journal DIR or -c FILE "
                             f"({config_path} does not exist)")
        path = Path(load_config(config_path).journal.dir)
    if not path.is_dir():
        raise UsageError(f"journal directory {path} does not exist")
    return path


def execute(args: argparse.Namespace) -> int:
    if args.influx:
        return _execute_remote(args)
    if args.database:
        raise UsageError("--database goes with --influx URL")
    journal = _journal_dir(args)
    if args.plot or args.html:
        try:
            check_available("--plot" if args.plot else "--html")
        except PlotUnavailableError as exc:
            print(f"wattd report: {exc}", file=sys.stderr)
            return 1
    if not list_segments(journal):
        print(f"wattd report: no journal segments (NNNNNNNN.lp or .lp.gz) in {journal}",
              file=sys.stderr)
        return 1
    scan = scan_journal(journal, plot=bool(args.plot or args.html))
    experiment = read_experiment(journal)
    options = ReportOptions(run_globs=args.run, baseline=args.baseline, per_tag=args.per,
                            group_by=args.group_by)
    try:
        report = build_report(scan, options, journal=str(journal), experiment=experiment)
    except ReportError as exc:
        print(f"wattd report: {exc}", file=sys.stderr)
        for note in scan_notes(scan.stats):
            print(f"wattd report: note: {note}", file=sys.stderr)
        return 1
    sys.stdout.write(render(report, args.format))
    if args.format != "json":
        for note in report.notes + scan_notes(report.scan.stats):
            print(f"note: {note}", file=sys.stderr)
    if args.plot:
        curves = plot_report(report, args.plot)
        print(f"wattd report: plotted {curves} run(s) to {args.plot}", file=sys.stderr)
    if args.html:
        from wattd.report.html import write_html

        write_html(report, args.html)
        print(f"wattd report: HTML report in {args.html}", file=sys.stderr)
    return 0



def _execute_remote(args: argparse.Namespace) -> int:
    """The same report from a shared database (SPEC 10), wattd.report.remote."""
    from wattd.report.remote import RemoteReadError, remote_scan

    if not args.influx.startswith(("http://", "https://")):
        raise UsageError("--influx must be an http:// or https:// URL")
    if args.plot:
        raise UsageError("--plot needs the readings: use it on a journal")
    try:
        scan = remote_scan(args.influx, args.database)
    except RemoteReadError as exc:
        print(f"wattd report: {exc}", file=sys.stderr)
        return 1
    if not scan.records:
        print(f"wattd report: no wattd_run points at {args.influx}"
              + (f" (database {args.database})" if args.database else ""), file=sys.stderr)
        return 1
    # Many meters: compare the per-run totals (json total_comparisons), not every
    # meter's groups pairwise.
    options = ReportOptions(run_globs=args.run, baseline=args.baseline, per_tag=args.per,
                            group_by=args.group_by,
                            per_meter_comparisons=len(scan.meters) <= 1)
    try:
        report = build_report(scan, options, journal=args.influx)
    except ReportError as exc:
        print(f"wattd report: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(report, args.format))
    if args.format != "json":
        for note in report.notes + scan_notes(report.scan.stats):
            print(f"note: {note}", file=sys.stderr)
    return 0
