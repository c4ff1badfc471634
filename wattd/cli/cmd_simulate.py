"""wattd simulate: serve a simulated meter on a pseudo-terminal until Ctrl-C.

Prints the port path (a stable symlink to the pty) on stdout; point a
config's ``port`` (or ``wattd capture``) at it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--driver", default="gb202", help="chip to simulate (default: gb202)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--power", type=float, default=None, metavar="W",
                      help="constant load in watts (default: 3)")
    load.add_argument("--profile", default=None, metavar="FILE",
                      help="load profile: lines 't_s,power_w', optional last line 'T,loop'")
    parser.add_argument("--link", default=None, metavar="PATH",
                        help="symlink path to create (default: in a new temp directory)")
    parser.add_argument("--coefficient", action="append", default=[], metavar="K=V",
                        help="chip calibration, e.g. kv=1.88 (repeatable)")


def execute(args: argparse.Namespace) -> int:
    from wattd.cli.cmd_replay import parse_coefficients
    from wattd.simulator.meter import start_simulated_meter

    if args.power is not None and args.power < 0:
        from wattd.errors import UsageError

        raise UsageError("--power must be >= 0")
    done = threading.Event()
    old_term = signal.signal(signal.SIGTERM, lambda _s, _f: done.set())
    server = start_simulated_meter(args.driver, power_w=args.power, profile=args.profile,
                                   calibration=parse_coefficients(args.coefficient) or None,
                                   link_path=args.link)
    try:
        print(server.port_path, flush=True)
        load = f"profile {args.profile}" if args.profile else f"{args.power or 3.0:g} W"
        print(f"wattd simulate: {args.driver} meter, {load}, on {server.port_path} "
              "(Ctrl-C to stop)", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, old_term)
    return 0
