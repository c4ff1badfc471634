"""wattd grafana export: the three files, secrets by reference only, usage errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from wattd.grafana.dashboard import DATASOURCE_UID, build_dashboard, iter_queries

SECRET = "s3cr3t-t0ken-value"


def wattd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattd", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def load(out: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    ds = yaml.safe_load((out / "provisioning/datasources/wattd.yaml").read_text())
    prov = yaml.safe_load((out / "provisioning/dashboards/wattd.yaml").read_text())
    dash = json.loads((out / "dashboards/wattd.json").read_text())
    return ds, prov, dash


def test_export_with_url_and_database(tmp_path: Path) -> None:
    out = tmp_path / "grafana"
    proc = wattd("grafana", "export", str(out), "--url", "http://influx.lan:8086",
                 "--database", "bench")
    assert proc.returncode == 0, proc.stderr
    ds, prov, dash = load(out)
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "influxdb"
    assert source["uid"] == DATASOURCE_UID
    assert source["url"] == "http://influx.lan:8086"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == source["database"] == "bench"
    assert "secureJsonData" not in source  # no auth asked for
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]) == (out / "dashboards").resolve()
    assert dash == build_dashboard()


def test_export_from_config_v2_token_by_reference(tmp_path: Path) -> None:
    token = tmp_path / "influx.token"
    token.write_text(SECRET + "\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""\
meters:
  - name: pi
    driver: simulated
influxdb:
  - url: https://influx.example:8086
    api: v2
    org: lab
    bucket: energy
    token_file: {token}
    verify_tls: false
  - url: http://second:8086
    api: v1
    database: other
""")
    out = tmp_path / "g"
    proc = wattd("grafana", "export", str(out), "-c", str(cfg))
    assert proc.returncode == 0, proc.stderr
    ds, _, _ = load(out)
    (source,) = ds["datasources"]
    assert source["url"] == "https://influx.example:8086"  # the first entry
    assert source["jsonData"]["dbName"] == "energy"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token ${WATTD_INFLUX_TOKEN}"
    assert source["jsonData"]["tlsSkipVerify"] is True
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text()
    assert SECRET not in proc.stdout + proc.stderr


def test_export_from_config_v1_password_by_reference(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(SECRET)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""\
meters:
  - name: pi
    driver: simulated
influxdb:
  url: http://localhost:8086
  api: v1
  database: wattd
  username: grafana
  password_file: {pw}
""")
    out = tmp_path / "g"
    assert wattd("grafana", "export", str(out), "-c", str(cfg)).returncode == 0
    ds, _, _ = load(out)
    (source,) = ds["datasources"]
    assert source["user"] == "grafana"
    assert source["secureJsonData"] == {"password": "${WATTD_INFLUX_PASSWORD}"}
    assert SECRET not in (out / "provisioning/datasources/wattd.yaml").read_text()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "g")
    assert wattd("grafana", "export", out, "--url", "http://x:8086").returncode == 2
    assert wattd("grafana", "export", out, "--url", "ftp://x", "--database", "d").returncode == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("meters:\n  - name: pi\n    driver: simulated\n")
    proc = wattd("grafana", "export", out, "-c", str(cfg))
    assert proc.returncode == 2
    assert "no influxdb section" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("meters:\n  - name: pi\n    drivr: simulated\n")
    proc = wattd("grafana", "export", out, "-c", str(bad))
    assert proc.returncode == 2
    assert "drivr" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(out).exists()


def test_dashboard_model_is_consistent() -> None:
    dash = build_dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {p["type"] for p in dash["panels"]} == {"timeseries", "barchart", "table", "row"}
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"meter", "run"}
    for where, query in iter_queries(dash):
        used = set(re.findall(r"\$(\w+)", query)) - {"timeFilter", "__interval"}
        assert used <= variables, (where, used)
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        for target in panel["targets"]:
            assert target["rawQuery"] is True
    regions = next(a for a in dash["annotations"]["list"] if a["name"] == "Runs")
    assert regions["enable"] is True
    assert regions["mappings"]["time"]["value"] == "start_ms"
