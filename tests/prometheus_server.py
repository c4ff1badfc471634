"""A real Prometheus server (Debian's `prometheus`) for tests: own config and TSDB
directory, a loopback port from tests/ports.py, a 1 s scrape interval, stopped by
pid. Missing binary: skip outside CI, fail in CI (tests/servers.require_binary)."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

from tests.servers import _http, _Server, require_binary


class Prometheus(_Server):
    name = "prometheus"

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        super().__init__(workdir)
        self.binary = require_binary("prometheus")
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: wattd\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n")

    def _command(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn"]

    def _ready(self) -> bool:
        status, _ = _http("GET", f"{self.url}/-/ready", timeout=1.0)
        return status == 200

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant PromQL query through the HTTP API: the result vector."""
        qs = urllib.parse.urlencode({"query": promql})
        status, body = _http("GET", f"{self.url}/api/v1/query?{qs}")
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise RuntimeError(f"prometheus query {promql!r}: {status} {doc}")
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def targets_up(self) -> dict[str, str]:
        status, body = _http("GET", f"{self.url}/api/v1/targets")
        if status != 200:
            return {}
        active = json.loads(body)["data"]["activeTargets"]
        return {t["scrapeUrl"]: t["health"] for t in active}

    def wait_for(self, promql: str, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Poll until the query returns at least ``count`` series."""
        deadline = time.monotonic() + timeout_s
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if len(result) >= count:
                return result
            time.sleep(0.3)
        raise AssertionError(f"{promql!r}: {len(result)} series after {timeout_s} s "
                             f"(targets {self.targets_up()}):\n{self.log_tail()}")
