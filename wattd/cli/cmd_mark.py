"""wattd mark: send a benchmark marker and print the daemon's reply.

Runs inside benchmark loops, so only the light client is imported, and a plain
command line is parsed by :mod:`wattd.cli.fastargs` (argparse only for help and
errors). ``-c FILE`` is read only when given (SPEC 9.1).
"""

from __future__ import annotations

import sys

from wattd.errors import MarkerInputError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from wattd.cli.fastargs import Options

VERBS = ("start", "stop", "abort", "event", "result")
# Keep in step with the client's defaults (tests/test_cli_fastargs.py checks them).
DEFAULT_TIMEOUT_S = 8.0
DEFAULT_RETRIES = 5
TARGET_FLAGS = {"--to": ("to", "str"), "--secret-file": ("secret_file", "str"),
                "-c": ("config", "str"), "--config": ("config", "str"),
                "--timeout": ("timeout", "float"), "--retries": ("retries", "int")}
TARGET_DEFAULTS: dict[str, object] = {"to": None, "secret_file": None, "config": None,
                                      "timeout": DEFAULT_TIMEOUT_S, "retries": DEFAULT_RETRIES}


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", metavar="HOST[:PORT]",
                        help="daemon address (default: the config's marker address with -c, "
                             "else $WATTD_MARKER, else 127.0.0.1:9288)")
    parser.add_argument("--secret-file", metavar="F",
                        help="shared secret for HMAC signing (default: markers.secret_file "
                             "of the config with -c)")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="take the marker address and secret from this daemon config "
                             "(read only when given)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"give up after S seconds (default {DEFAULT_TIMEOUT_S:g}; "
                             "a stop waits for the reading after the stop time)")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                        help=f"retransmissions with the same id (default {DEFAULT_RETRIES})")


def parse_fast(argv: Sequence[str]) -> Options | None:
    from wattd.cli import fastargs

    return fastargs.parse(
        argv, positionals=(("verb", VERBS), ("name", None)),
        flags={"--phase": ("phase", "str"), "--tag": ("tag", "append"),
               "--meter": ("meter", "str"), **TARGET_FLAGS},
        defaults={"phase": None, "tag": [], "meter": None, "expect": None, "interface": None,
                  "allow": None, "value": [], **TARGET_DEFAULTS})


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
    fleet = parser.add_argument_group("multicast (--to GROUP:PORT, SPEC 10)")
    fleet.add_argument("--interface", metavar="ADDR",
                       help="send to the group through the interface with this address")
    fleet.add_argument("--expect", metavar="N|ADDR,...",
                       help="daemons that must answer: a count (default 1) or their addresses")
    fleet.add_argument("--allow", action="append", metavar="CIDR",
                       help="ignore replies from outside these networks (repeatable)")


def load_secret(path: str | None) -> bytes | None:
    from wattd.secretfile import read_secret

    if not path:
        return None
    try:
        return read_secret(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--secret-file: {exc}") from None


def resolve_target(args: argparse.Namespace | Options) -> tuple[str | None, bytes | None]:
    """(address, secret) per SPEC 9.1: ``--to`` / ``--secret-file``, then ``-c FILE``
    (its first ``listen``, or the multicast group, and ``markers.secret_file``),
    then ``$WATTD_MARKER`` (the client's default), then 127.0.0.1:9288. The config
    is read only when ``-c`` is given, and only what is still missing is taken."""
    to: str | None = args.to
    secret = load_secret(args.secret_file)
    if args.config and (to is None or secret is None):
        from wattd.cli.marker_config import marker_target

        cfg_to, cfg_secret = marker_target(args.config)
        if to is None:
            to = cfg_to
        if args.secret_file is None:
            secret = cfg_secret
    return to, secret


def execute(args: argparse.Namespace | Options) -> int:
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
    if _fanout(args, to):  # several daemons answer one message (wattd.markers.fanout)
        from wattd.markers import fanout

        return fanout.execute(args, tags, secret, to=to)
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


def _fanout(args: argparse.Namespace | Options, to: str | None) -> bool:
    if args.expect is not None or args.interface or args.allow:
        return True
    from wattd.markers.client import parse_target

    try:
        host = parse_target(to)[0]
    except ValueError:
        return False  # the unicast path reports the bad --to
    # 224.0.0.0/4 or ff00::/8, without importing ipaddress on the mark path.
    first = host.split(".", 1)[0]
    if first.isdigit() and host.count(".") == 3:
        return 224 <= int(first) <= 239
    return host.lower().startswith("ff") and ":" in host


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
