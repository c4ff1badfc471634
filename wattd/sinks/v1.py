"""InfluxDB 1.x sink: POST line protocol to ``/write`` (db, rp, ns precision, basic auth).

Talks to Debian's / Raspberry Pi OS's `influxdb` 1.6 package and to anything
speaking the 1.x write endpoint. The standard library's http.client does the
HTTP/HTTPS over one keep-alive connection (``wattd.sinks.http_post``);
requests run in one worker thread per sink so the event loop never blocks on
the network.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from collections.abc import Sequence

from wattd.config import InfluxConfig
from wattd.sinks.threaded import ThreadedSink

DEFAULT_DATABASE = "wattd"


class InfluxV1Sink(ThreadedSink):
    """Writes batches to ``{url}/write?db=..&rp=..&precision=ns``."""

    def __init__(self, cfg: InfluxConfig) -> None:
        super().__init__(cfg)
        params = {"db": cfg.database or DEFAULT_DATABASE, "precision": "ns"}
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        self._write_path = f"/write?{urllib.parse.urlencode(params)}"
        self._auth_header: dict[str, str] = {}
        self._load_credentials()

    def _load_credentials(self) -> None:
        # Read at start and again after a 401, so fixing password_file needs no restart.
        if self._cfg.username:
            password = self._cfg.password() or ""
            token = base64.b64encode(f"{self._cfg.username}:{password}".encode()).decode()
            self._auth_header = {"Authorization": f"Basic {token}"}
        else:
            self._auth_header = {}

    async def reload_credentials(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load_credentials)

    def _post(self, lines: Sequence[bytes]) -> None:
        self._post_lines(self._write_path, lines, self._auth_header)
