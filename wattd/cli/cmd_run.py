"""wattd run: the daemon."""

from __future__ import annotations

import asyncio

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from wattd.cli.fastargs import Options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="config file (default: $WATTD_CONFIG, then /etc/wattd/config.yaml)")
    parser.add_argument("--simulate", action="store_true",
                        help="replace every serial meter with a simulated one on a pseudo-terminal")
    parser.add_argument("--unpaced", action="store_true",
                        help="with --simulate: feed the simulated meters in process, as fast as "
                             "the pipeline accepts (load and soak tests), not at the wire rate")


def parse_fast(argv: Sequence[str]) -> Options | None:
    """A plain command line without argparse: the daemon runs for months, and argparse's
    help formatter leaves shutil, bz2 and lzma imported (about a megabyte)."""
    from wattd.cli import fastargs

    return fastargs.parse(argv, positionals=(),
                          flags={"-c": ("config", "str"), "--config": ("config", "str"),
                                 "--simulate": ("simulate", "flag"),
                                 "--unpaced": ("unpaced", "flag")},
                          defaults={"config": None, "simulate": False, "unpaced": False})


def execute(args: argparse.Namespace | Options) -> int:
    from wattd.config import load_config
    from wattd.daemon.app import Daemon
    from wattd.logsetup import setup_logging

    if args.unpaced and not args.simulate:
        from wattd.errors import UsageError

        raise UsageError("--unpaced needs --simulate")
    cfg = load_config(args.config)
    setup_logging(cfg.log.format, cfg.log.level)
    daemon = Daemon(cfg, simulate=args.simulate, unpaced=args.unpaced)
    return asyncio.run(daemon.run())
