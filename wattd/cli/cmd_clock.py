"""``wattd clock [--server HOST[:PORT]]``: is this host's clock good enough to measure?

Prints the kernel's clock state (adjtimex, read only) and, with ``--server``,
an SNTP offset and round-trip delay. Exit 0 when synchronised (and, with
``--server``, |offset| <= max_error_ms), 1 otherwise, so a benchmark script
can refuse to start on a bad clock. Import-light: ctypes, socket, argparse.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from wattd.clock import sntp
from wattd.clock.adjtimex import ClockStateReader, KernelClockState, KernelReader
from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.clock.verdict import CAVEATS, assess
from wattd.errors import UsageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_MAX_ERROR_MS = 100.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="HOST[:PORT]",
                        help="also query this NTP server (SNTP) for our offset")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="take clock.max_error_ms from this config file")
    parser.add_argument("--max-error-ms", type=float, default=None,
                        help="largest acceptable error/offset (default: config, else 100)")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S",
                        help="SNTP reply timeout per attempt (default 2 s)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def execute(args: argparse.Namespace) -> int:
    return run_clock(args, KernelReader(), sys.stdout)


def _max_error_ms(args: argparse.Namespace) -> float:
    if args.max_error_ms is not None:
        if not args.max_error_ms > 0:
            raise UsageError("--max-error-ms must be positive")
        return float(args.max_error_ms)
    if args.config:
        # lazy: yaml and the config schema only when -c is given; ConfigError -> exit 2
        from wattd.config import load_config
        return float(load_config(args.config).clock.max_error_ms)
    return DEFAULT_MAX_ERROR_MS


def run_clock(args: argparse.Namespace, reader: ClockStateReader, out: TextIO,
              clock: Clock = SYSTEM_CLOCK) -> int:
    """The command, with the kernel reader and the clock injectable (tests)."""
    max_error_ms = _max_error_ms(args)
    state: KernelClockState | None = None
    read_error = ""
    try:
        state = reader.read()
    except OSError as exc:
        read_error = str(exc)
    verdict = assess(state, max_error_ms, read_error)
    ok = verdict.synced
    report: dict[str, object] = {"synced": verdict.synced, "basis": verdict.basis,
                                 "reason": verdict.reason, "max_error_ms": max_error_ms}
    if state is not None:
        report["kernel"] = state.as_dict()

    server_line = ""
    if args.server:
        try:
            host, port = sntp.parse_server(args.server)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:
            result = sntp.query(host, port, timeout_s=args.timeout, clock=clock)
        except sntp.SntpError as exc:
            ok = False
            report["server"] = {"address": args.server, "error": str(exc)}
            server_line = f"server    {args.server}: FAILED: {exc}"
        else:
            within = abs(result.offset_ms) <= max_error_ms
            ok = ok and within
            report["server"] = {"address": result.server, "offset_ms": result.offset_ms,
                                "delay_ms": result.delay_ms, "stratum": result.stratum,
                                "ref_id": result.ref_id, "offset_within_limit": within}
            server_line = (f"server    {result.server}: offset {result.offset_ms:+.3f} ms, "
                           f"delay {result.delay_ms:.3f} ms, stratum {result.stratum}, "
                           f"ref {result.ref_id}"
                           + ("" if within else f"  (|offset| > {max_error_ms:g} ms)"))
    report["ok"] = ok

    if args.format == "json":
        out.write(json.dumps(report, sort_keys=True) + "\n")
        return EXIT_OK if ok else EXIT_FAILED

    lines = [f"clock     {'SYNCHRONISED' if verdict.synced else 'NOT SYNCHRONISED'}: "
             f"{verdict.reason}"]
    if state is not None:
        lines += [
            f"kernel    {state.state_name}, status {' '.join(state.flags) or '-'}",
            f"maxerror  {state.maxerror_us / 1000:.3f} ms"
            + ("" if verdict.error_known else "  (not an error estimate)"),
            f"esterror  {state.esterror_us / 1000:.3f} ms",
            f"offset    {state.offset_ns / 1e6:+.3f} ms (remaining kernel PLL correction)",
            f"frequency {state.freq_ppm:+.3f} ppm",
        ]
    if server_line:
        lines.append(server_line)
    lines.append(f"result    {'ok' if ok else 'NOT OK'} (limit {max_error_ms:g} ms)")
    lines += [f"note      {c}" for c in CAVEATS]
    out.write("\n".join(lines) + "\n")
    return EXIT_OK if ok else EXIT_FAILED
