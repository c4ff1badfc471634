"""wattd exec NAME [options] -- COMMAND...: measure COMMAND as run NAME (SPEC 9.1)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from wattd.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "wattd exec NAME [options] -- COMMAND [ARG]..."
    parser.add_argument("name", help="run name: 1-128 chars of [A-Za-z0-9._:/-]")
    parser.epilog = "Everything after -- is COMMAND, passed as is (ab's -c is not ours)."
    parser.add_argument("--tag", action="append", default=[], metavar="K=V",
                        help="user tag of the run (repeatable, at most 16)")
    parser.add_argument("--meter", metavar="M", help="limit to one meter (default: all)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run COMMAND N times as NAME-1 .. NAME-N")
    parser.add_argument("--pause", type=float, default=0.0, metavar="S",
                        help="seconds between repeats (default 0)")
    parser.add_argument("--idle", type=float, metavar="S",
                        help="first record an idle run NAME-idle of S seconds (the baseline)")
    parser.add_argument("--results", metavar="FILE",
                        help="parse FILE after COMMAND exits (ab -e CSV, JMeter JTL CSV, "
                             "k6 --summary-export JSON)")
    parser.add_argument("--no-parse", action="store_true",
                        help="do not parse COMMAND's output (stdout is then not piped)")
    parser.add_argument("--keep-failed", action="store_true",
                        help="stop (not abort) a run whose COMMAND failed or was interrupted")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="take the marker address and secret from this config")
    parser.add_argument("--to", metavar="HOST[:PORT]",
                        help="daemon address (default: -c, $WATTD_MARKER, 127.0.0.1:9288)")
    parser.add_argument("--secret-file", metavar="F", help="shared secret for HMAC signing")
    parser.parse_args = _split_at_dashes(parser)  # type: ignore[method-assign]


def _split_at_dashes(parser: argparse.ArgumentParser) -> Any:
    """wattd's options end at the first ``--``; what follows is COMMAND, untouched."""
    parse = parser.parse_args

    def parse_args(args: Sequence[str] | None = None,
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        items = list(args or [])
        if "--" in items:
            cut = items.index("--")
            head, command = items[:cut], items[cut + 1:]
        else:
            head, command = items, []
        ns = parse(head, namespace)
        ns.command = command
        return ns

    return parse_args


def execute(args: argparse.Namespace) -> int:
    from wattd.experiment import runner, target
    from wattd.markers.wire import is_name

    command = list(args.command)
    if not command:
        raise UsageError("no COMMAND: wattd exec NAME [options] -- COMMAND [ARG]...")
    if not is_name(args.name):
        raise UsageError(f"bad run name {args.name!r}: 1-128 chars of [A-Za-z0-9._:/-]")
    if args.repeat < 1 or args.pause < 0 or (args.idle is not None and args.idle <= 0):
        raise UsageError("--repeat must be >= 1, --pause >= 0, --idle > 0")
    if args.no_parse and args.results:
        raise UsageError("--results and --no-parse exclude each other")
    opts = runner.ExecOptions(
        name=args.name, command=command, tags=runner.parse_tags(args.tag), meter=args.meter,
        repeat=args.repeat, pause_s=args.pause, idle_s=args.idle, results_file=args.results,
        parse=not args.no_parse, keep_failed=args.keep_failed)
    where = target.resolve(args.to, args.secret_file, args.config)
    return runner.execute(opts, where.to, where.secret)
