"""wattd run: the daemon."""

from __future__ import annotations

import argparse
import asyncio


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="config file (default: $WATTD_CONFIG, then /etc/wattd/config.yaml)")
    parser.add_argument("--simulate", action="store_true",
                        help="replace every serial meter with a simulated one on a pseudo-terminal")
    parser.add_argument("--unpaced", action="store_true",
                        help="with --simulate: feed the simulated meters in process, as fast as "
                             "the pipeline accepts (load and soak tests), not at the wire rate")


def execute(args: argparse.Namespace) -> int:
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
