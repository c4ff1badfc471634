"""wattd check-config: validate a configuration file (exit 0 valid, 2 invalid)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="config file (default: $WATTD_CONFIG, then /etc/wattd/config.yaml)")


def execute(args: argparse.Namespace) -> int:
    from wattd.config import load_config

    cfg = load_config(args.file)
    meters = ", ".join(f"{m.name} ({m.driver})" for m in cfg.meters)
    sinks = ", ".join(f"{db.api} {db.url}" for db in cfg.influxdb) or "none (journal only)"
    print(f"{cfg.path}: ok")
    print(f"  meters:  {meters}")
    print(f"  markers: {', '.join(cfg.markers.listen)}")
    print(f"  journal: {cfg.journal.dir}")
    print(f"  influxdb: {sinks}")
    return 0
