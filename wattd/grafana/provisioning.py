"""Grafana provisioning files for wattd: datasource, dashboard provider, dashboard.

Layout written under DIR (copy or point Grafana at it)::

    DIR/provisioning/datasources/wattd.yaml   -> /etc/grafana/provisioning/datasources/
    DIR/provisioning/dashboards/wattd.yaml    -> /etc/grafana/provisioning/dashboards/
    DIR/dashboards/wattd.json                 (the provider's options.path points here)

Secrets are never written: the datasource refers to environment variables
that Grafana expands when it reads the file (``WATTD_INFLUX_TOKEN`` for a
token, ``WATTD_INFLUX_PASSWORD`` for a 1.x password).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wattd.config import InfluxConfig
from wattd.grafana.dashboard import DATASOURCE_UID, build_dashboard

TOKEN_ENV = "WATTD_INFLUX_TOKEN"  # noqa: S105 - the name of a variable, not a secret
PASSWORD_ENV = "WATTD_INFLUX_PASSWORD"  # noqa: S105 - the name of a variable, not a secret


@dataclass(slots=True)
class InfluxTarget:
    """Where Grafana reads wattd's data (InfluxQL)."""

    url: str
    database: str
    api: str = "v1"
    username: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    @classmethod
    def from_config(cls, cfg: InfluxConfig) -> InfluxTarget:
        database = (cfg.bucket if cfg.api == "v2" else cfg.database) or "wattd"
        return cls(url=cfg.url, database=database, api=cfg.api, username=cfg.username,
                   verify_tls=cfg.verify_tls,
                   ca_file=cfg.ca_file)


def datasource(target: InfluxTarget) -> dict[str, Any]:
    json_data: dict[str, Any] = {"version": "InfluxQL", "dbName": target.database,
                                 "httpMode": "POST", "timeInterval": "1s"}
    secure: dict[str, Any] = {}
    ds: dict[str, Any] = {
        "name": "wattd", "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy",
        "url": target.url,
        "database": target.database,  # Grafana < 9 reads this; newer ones jsonData.dbName
        "isDefault": False, "editable": True,
    }
    if target.api == "v2":
        # InfluxDB 2.x/3.x through InfluxQL: the token goes in an Authorization header.
        json_data["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token ${{{TOKEN_ENV}}}"
    elif target.username:
        ds["user"] = target.username
        secure["password"] = f"${{{PASSWORD_ENV}}}"
    if not target.verify_tls:
        json_data["tlsSkipVerify"] = True
    if target.ca_file:
        json_data["tlsAuthWithCACert"] = True
        secure["tlsCACert"] = f"$__file{{{target.ca_file}}}"
    ds["jsonData"] = json_data
    if secure:
        ds["secureJsonData"] = secure
    return {"apiVersion": 1, "datasources": [ds]}


def dashboard_provider(dashboards_path: str) -> dict[str, Any]:
    return {"apiVersion": 1, "providers": [{
        "name": "wattd", "orgId": 1, "folder": "wattd", "type": "file",
        "disableDeletion": False, "allowUiUpdates": True, "updateIntervalSeconds": 30,
        "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
    }]}


def _header(target: InfluxTarget) -> str:
    lines = ["# Written by `wattd grafana export`. Grafana expands ${VAR} from its environment."]
    if target.api == "v2":
        lines.append(f"# Set {TOKEN_ENV} for grafana-server (InfluxDB 2.x needs a DBRP "
                     f"mapping for {target.database!r}; 2.2+ has virtual ones per bucket).")
    elif target.username:
        lines.append(f"# Set {PASSWORD_ENV} for grafana-server "
                     f"(e.g. `systemctl edit grafana-server`: Environment=...).")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def export(directory: str | os.PathLike[str], target: InfluxTarget,
           dashboards_path: str | None = None) -> list[Path]:
    """Write the three files; returns their paths."""
    root = Path(directory).resolve()
    dash_dir = root / "dashboards"
    provider_path = dashboards_path or str(dash_dir)
    dump = {"sort_keys": False, "default_flow_style": False, "allow_unicode": True}
    return [
        _write(root / "provisioning" / "datasources" / "wattd.yaml",
               _header(target) + yaml.safe_dump(datasource(target), **dump)),  # type: ignore[call-overload]
        _write(root / "provisioning" / "dashboards" / "wattd.yaml",
               yaml.safe_dump(dashboard_provider(provider_path), **dump)),  # type: ignore[call-overload]
        _write(dash_dir / "wattd.json", json.dumps(build_dashboard(), indent=2) + "\n"),
    ]
