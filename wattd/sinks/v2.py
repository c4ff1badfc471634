"""InfluxDB 2.x/3.x sink (also 1.8+ compatibility API and VictoriaMetrics): ``/api/v2/write``.

One POST of line protocol per batch to ``{url}/api/v2/write?org=..&bucket=..&
precision=ns`` with ``Authorization: Token ...``, over the same small
http.client connection as the v1 sink (``wattd.sinks.http_post``): no
influxdb-client at run time (its import costs ~15 MB per process, and pulls in
numpy whenever numpy is installed). The body is gzipped at level 1 like the v1
sink's. The delivery loop does retries and bisecting.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Sequence

from wattd.config import InfluxConfig
from wattd.sinks.threaded import ThreadedSink

DEFAULT_BUCKET = "wattd"
DEFAULT_ORG = "wattd"
WRITE_PATH = "/api/v2/write"


class InfluxV2Sink(ThreadedSink):
    """Writes batches to ``{url}/api/v2/write`` (bucket, org, ns precision, token)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        super().__init__(cfg)
        params = {"org": cfg.org or DEFAULT_ORG, "bucket": cfg.bucket or DEFAULT_BUCKET,
                  "precision": "ns"}
        self._write_path = f"{WRITE_PATH}?{urllib.parse.urlencode(params)}"
        self._auth_header: dict[str, str] = {}
        self._load_token()

    def _load_token(self) -> None:
        # The token is read here, at start and again after a 401: fixing token_file
        # (or the environment of a restarted daemon) needs no code path of its own.
        token = self._cfg.token()
        self._auth_header = {"Authorization": f"Token {token}"} if token else {}

    async def reload_credentials(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load_token)

    def _post(self, lines: Sequence[bytes]) -> None:
        self._post_lines(self._write_path, lines, {"Accept": "application/json",
                                                   **self._auth_header})
