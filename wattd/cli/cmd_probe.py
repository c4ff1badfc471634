"""wattd probe: the server's CPU and memory, sent to the daemon (SPEC 9.3).

Runs on the machine under test beside the server, so it must stay light:
no yaml (unless -c), no structlog, no influxdb_client; re only with --match.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from wattd.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pid", type=int, action="append", default=[], metavar="PID",
                        help="probe this process and all its descendants (repeatable)")
    parser.add_argument("--match", action="append", default=[], metavar="REGEX",
                        help="probe every process whose command line matches (repeatable; "
                             "re-evaluated each interval)")
    parser.add_argument("--cgroup", metavar="PATH",
                        help="probe a cgroup v2 (cpu.stat usage_usec, memory.current); "
                             "relative paths are under /sys/fs/cgroup")
    parser.add_argument("--host", metavar="NAME", help="host tag (default: the hostname)")
    parser.add_argument("--meter", metavar="M",
                        help="tag samples with the run open on this meter (default: the only "
                             "open run)")
    parser.add_argument("--interval", type=float, default=0.5, metavar="S",
                        help="seconds between samples (default 0.5)")
    parser.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="take the marker address and secret from this config")
    parser.add_argument("--to", metavar="HOST[:PORT]",
                        help="daemon address (default: -c, $WATTD_MARKER, 127.0.0.1:9288)")
    parser.add_argument("--secret-file", metavar="F", help="shared secret for HMAC signing")


def _host_name(given: str | None) -> str:
    import socket

    from wattd.markers.wire import is_name

    if given is not None:
        if not is_name(given):
            raise UsageError(f"--host {given!r}: 1-128 chars of [A-Za-z0-9._:/-]")
        return given
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._:/-") else "-"
                   for c in socket.gethostname())[:128]
    return name or "host"


def _matcher(pattern: str) -> Callable[[str], bool]:
    import re

    try:
        search = re.compile(pattern).search
    except re.error as exc:
        raise UsageError(f"--match {pattern!r}: {exc}") from None
    return lambda text: search(text) is not None


def execute(args: argparse.Namespace) -> int:
    import signal

    from wattd.experiment.target import resolve
    from wattd.markers.client import parse_target
    from wattd.probe import procfs
    from wattd.probe.ledger import ProcessLedger
    from wattd.probe.run import Cgroup, Probe, ProbeOptions

    if args.interval < 0.05 or (args.seconds is not None and args.seconds <= 0):
        raise UsageError("--interval must be >= 0.05 and --seconds > 0")
    if args.cgroup and (args.pid or args.match):
        raise UsageError("--cgroup probes a cgroup: not with --pid or --match")
    ledger = cgroup = None
    if args.cgroup:
        try:
            cgroup = Cgroup(args.cgroup)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--cgroup {args.cgroup}: not a readable cgroup v2 directory "
                             f"({exc})") from None
        target = cgroup.path
    elif args.pid or args.match:
        matchers = [_matcher(pattern) for pattern in args.match]
        for pid in args.pid:
            if procfs.read_pid_stat(pid) is None:
                raise UsageError(f"--pid {pid}: no such process")
        ledger = ProcessLedger(args.pid, matchers)
        first = procfs.read_pid_stat(args.pid[0]) if args.pid else None
        target = " ".join(args.match) if args.match else (first.comm if first else "pid")
    else:
        target = "host"
    where = resolve(args.to, args.secret_file, args.config)
    try:
        to = parse_target(where.to)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    opts = ProbeOptions(host=_host_name(args.host), target=target[:256], meter=args.meter,
                        interval_s=args.interval, seconds=args.seconds)
    probe = Probe(opts, to, where.secret, ledger=ledger, cgroup=cgroup)
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        probe.run(stop=lambda: bool(stopping))
    finally:
        probe.close()
    print(f"wattd probe: {probe.sent} samples sent to {to[0]} port {to[1]} "
          f"({probe.send_errors} send errors)", file=sys.stderr)
    return 0
