"""wattd status: ask the daemon for its status over the marker port."""

from __future__ import annotations

import argparse
import sys

from wattd.cli.cmd_mark import add_target_options, resolve_target
from wattd.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    add_target_options(parser)
    parser.add_argument("--json", action="store_true", help="one line of JSON (default: indented)")


def execute(args: argparse.Namespace) -> int:
    import json

    from wattd.markers.client import NoReplyError, send_marker

    to, secret = resolve_target(args)
    try:
        reply = send_marker("status", to=to, secret=secret, timeout_s=args.timeout,
                            retries=args.retries)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (NoReplyError, OSError) as exc:
        print(f"wattd status: {exc}", file=sys.stderr)
        return 1
    if not reply.ok or reply.status is None:
        print(f"error {reply.code} {reply.text}", file=sys.stderr)
        return 1
    status = dict(reply.status)
    status.pop("id", None)
    print(json.dumps(status, separators=(",", ":")) if args.json
          else json.dumps(status, indent=2, sort_keys=False))
    return 0
