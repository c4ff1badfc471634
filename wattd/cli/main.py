"""Command-line entry point.

Sub-commands live in their own modules and are imported only when chosen,
so ``wattd mark`` (run inside benchmark loops) starts without importing the
daemon, structlog, yaml or influxdb-client; this module itself imports only
``sys``, and argparse only when a command line needs it.

Each command module provides ``configure(parser)`` and ``execute(args) -> int``;
a command on the fast path also ``parse_fast(argv)`` (see wattd.cli.fastargs),
which parses a plain command line without argparse or returns None.
Exit status: 0 success, 1 operation failed, 2 usage or config error.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

# name -> (module, one-line help). Keep sorted by how often users type them.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("wattd.cli.cmd_run", "run the daemon"),
    "mark": ("wattd.cli.cmd_mark", "send a benchmark marker (start/stop/abort/event)"),
    "status": ("wattd.cli.cmd_status", "ask the running daemon for its status"),
    "exec": ("wattd.cli.cmd_exec", "measure a command (a load generator) as a run"),
    "probe": ("wattd.cli.cmd_probe", "send the server's CPU and memory use to the daemon"),
    "simulate": ("wattd.cli.cmd_simulate", "serve a simulated meter on a pseudo-terminal"),
    "replay": ("wattd.cli.cmd_replay", "decode a capture or raw byte file"),
    "capture": ("wattd.cli.cmd_capture", "record a meter's serial output with timing"),
    "identify": ("wattd.cli.cmd_identify", "tell which metering chip produced a capture"),
    "calibrate": ("wattd.cli.cmd_calibrate", "derive calibration from a known reference load"),
    "check-config": ("wattd.cli.cmd_check_config", "validate a configuration file"),
    "clock": ("wattd.cli.cmd_clock", "check clock synchronisation (kernel, optional NTP server)"),
    "report": ("wattd.cli.cmd_report", "joules per run from the journal, statistics, comparisons"),
    "demo": ("wattd.cli.cmd_demo", "the Raspberry Pi experiment, simulated, in under a minute"),
    "grafana": ("wattd.cli.cmd_grafana", "export Grafana provisioning (datasource, dashboard)"),
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _top_parser() -> argparse.ArgumentParser:
    import argparse

    from wattd import __version__

    parser = argparse.ArgumentParser(
        prog="wattd",
        description="Energy measurement daemon for software benchmarks.",
        epilog="commands:\n" + "\n".join(f"  {n:<14} {h}" for n, (_, h) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wattd {__version__}")
    parser.add_argument("command", nargs="?", help="one of the commands below")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        top = _top_parser()
        top.parse_args(args)  # handles --version / --help (exits)
        top.print_help(sys.stderr)
        return EXIT_USAGE
    name = args[0]
    if name not in COMMANDS:
        print(f"wattd: unknown command {name!r} (try 'wattd --help')", file=sys.stderr)
        return EXIT_USAGE
    module_name, help_text = COMMANDS[name]
    __import__(module_name)
    module = sys.modules[module_name]
    parse_fast = getattr(module, "parse_fast", None)
    ns = parse_fast(args[1:]) if parse_fast is not None else None
    if ns is None:
        import argparse

        parser = argparse.ArgumentParser(prog=f"wattd {name}", description=help_text)
        module.configure(parser)
        ns = parser.parse_args(args[1:])
    try:
        return int(module.execute(ns))
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # `wattd status | head`: the reader went away; not an error worth a traceback.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        from wattd.errors import ConfigError, UsageError

        if isinstance(exc, ConfigError | UsageError):
            print(f"wattd {name}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
