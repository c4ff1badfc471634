"""wattd mark: send a benchmark marker and print the daemon's reply.

Runs inside benchmark loops, so only the light client is imported.
"""

from __future__ import annotations

import argparse
import sys

from wattd.errors import MarkerInputError, UsageError

VERBS = ("start", "stop", "abort", "event", "result")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    from wattd.markers.client import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

    parser.add_argument("--to", metavar="HOST[:PORT]",
                        help="daemon address (default: $WATTD_MARKER, then 127.0.0.1:9288)")
    parser.add_argument("--secret-file", metavar="F", help="shared secret for HMAC signing")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="marker address and secret from this config (read only when given)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"give up after S seconds (default {DEFAULT_TIMEOUT_S:g}; "
                             "a stop waits for the reading after the stop time)")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                        help=f"retransmissions with the same id (default {DEFAULT_RETRIES})")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", choices=VERBS)
    parser.add_argument("name", help="run name: 1-128 chars of [A-Za-z0-9._:/-]")
    parser.add_argument("--phase", metavar="P", help="a phase inside the run")
    parser.add_argument("--tag", action="append", default=[], metavar="K=V",
                        help="user tag of the run (repeatable, at most 16)")
    parser.add_argument("--value", action="append", default=[], metavar="K=V",
                        help="result: a numeric result of the run (repeatable, at most 32)")
    parser.add_argument("--meter", metavar="M", help="limit to one meter (default: all)")
    add_target_options(parser)


def resolve_target(args: argparse.Namespace) -> tuple[str | None, bytes | None]:
    """--to/--secret-file, then -c FILE (yaml is imported only then), then the defaults."""
    if getattr(args, "config", None):
        from wattd.experiment.target import resolve

        where = resolve(args.to, args.secret_file, args.config)
        return where.to, where.secret
    return args.to, load_secret(args.secret_file)


def load_secret(path: str | None) -> bytes | None:
    from wattd.secretfile import read_secret

    if not path:
        return None
    try:
        return read_secret(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--secret-file: {exc}") from None


def execute(args: argparse.Namespace) -> int:
    from wattd.markers.client import NoReplyError, send_marker

    tags: dict[str, object] = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag expects K=V, got {item!r}")
        tags[key] = value
    if args.verb == "result":
        if args.tag or args.phase or not args.value:
            raise UsageError("result takes --value K=V (at least one), no --tag or --phase")
        for item in args.value:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--value expects K=V, got {item!r}")
            tags[key] = value
    elif args.value:
        raise UsageError("--value is for 'wattd mark result'")
    if args.timeout <= 0 or args.retries < 0:
        raise UsageError("--timeout must be > 0 and --retries >= 0")
    to, secret = resolve_target(args)
    try:
        reply = send_marker(args.verb, args.name, to=to, secret=secret,
                            timeout_s=args.timeout, retries=args.retries, tags=tags,
                            phase=args.phase, meter=args.meter)
    except MarkerInputError as exc:
        raise UsageError(str(exc.detail or exc)) from None
    except ValueError as exc:  # a bad --to
        raise UsageError(str(exc)) from None
    except (NoReplyError, OSError) as exc:
        print(f"wattd mark: {exc}", file=sys.stderr)
        return 1
    return print_reply(reply)


def print_reply(reply: object) -> int:
    from wattd.markers.wire import Reply

    assert isinstance(reply, Reply)
    if reply.ok:
        parts = ["ok", reply.verb or ""]
        if reply.name:
            parts.append(reply.name)
        parts += [f"{k}={v}" for k, v in reply.fields.items()]
        print(" ".join(parts))
        return 0
    print(f"error {reply.code} {reply.text}", file=sys.stderr)
    return 1
