"""wattd grafana export DIR: Grafana provisioning for wattd's InfluxDB data."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    exp = sub.add_parser(
        "export", help="write datasource, dashboard provider and dashboard files to DIR",
        description="Write DIR/provisioning/datasources/wattd.yaml, "
                    "DIR/provisioning/dashboards/wattd.yaml and DIR/dashboards/wattd.json. "
                    "The InfluxDB comes from the config's first influxdb entry, or from "
                    "--url and --database.")
    exp.add_argument("dir", metavar="DIR", help="output directory (created if missing)")
    exp.add_argument("-c", "--config", metavar="FILE",
                     help="wattd config (default: $WATTD_CONFIG, then /etc/wattd/config.yaml)")
    exp.add_argument("--url", help="InfluxDB URL, e.g. http://localhost:8086 (instead of -c)")
    exp.add_argument("--database", help="InfluxDB database (1.x) or DBRP-mapped bucket")
    exp.add_argument("--dashboards-path", metavar="PATH",
                     help="where Grafana will find the dashboard JSON, written into the "
                          "provider file (default: DIR/dashboards, absolute)")


def execute(args: argparse.Namespace) -> int:
    from wattd.errors import UsageError
    from wattd.grafana.provisioning import InfluxTarget, export

    if (args.url is None) != (args.database is None):
        raise UsageError("--url and --database go together")
    if args.url is not None and args.config is not None:
        raise UsageError("give either -c FILE or --url/--database, not both")
    if args.url is not None:
        if not args.url.startswith(("http://", "https://")):
            raise UsageError(f"--url must start with http:// or https://, not {args.url!r}")
        target = InfluxTarget(url=args.url, database=args.database)
    else:
        from wattd.config import load_config

        cfg = load_config(args.config)
        if not cfg.influxdb:
            raise UsageError(f"{cfg.path}: no influxdb section; give --url and --database")
        target = InfluxTarget.from_config(cfg.influxdb[0])
    for path in export(args.dir, target, args.dashboards_path):
        print(path)
    print(f"datasource: {target.url} database {target.database!r} (InfluxQL)", file=sys.stderr)
    return 0
