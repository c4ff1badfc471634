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
from wattd.logsetup import get_logger
from wattd.sinks.base import classify_http, encode_body
from wattd.sinks.http_post import HttpPoster
from wattd.sinks.threaded import ThreadedSink

DEFAULT_DATABASE = "wattd"

log = get_logger("wattd.sinks")


def make_poster(cfg: InfluxConfig) -> HttpPoster:
    """The sink's connection, honouring `verify_tls`, `ca_file` and `timeout_s`."""
    if cfg.url.startswith("https:") and not cfg.verify_tls:
        # The user chose this (a self-signed box on the LAN): say it once in the log,
        # not once per request.
        log.warning("tls_verification_disabled", url=cfg.url)
    return HttpPoster(cfg.url, timeout_s=cfg.timeout_s, verify_tls=cfg.verify_tls,
                      ca_file=cfg.ca_file)


class InfluxV1Sink(ThreadedSink):
    """Writes batches to ``{url}/write?db=..&rp=..&precision=ns``."""

    def __init__(self, cfg: InfluxConfig) -> None:
        super().__init__(cfg)
        params = {"db": cfg.database or DEFAULT_DATABASE, "precision": "ns"}
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        self._write_path = f"/write?{urllib.parse.urlencode(params)}"
        self._poster = make_poster(cfg)
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
        body = encode_body(lines, use_gzip=self._cfg.gzip)
        headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth_header}
        if self._cfg.gzip:
            headers["Content-Encoding"] = "gzip"
        status, data, resp_headers = self._poster.post(self._write_path, body, headers)
        error = classify_http(status, data, resp_headers, what=self._cfg.url)
        if error is not None:
            raise error

    async def close(self) -> None:
        # A request still running in the thread finishes (bounded by timeout_s); its
        # batch was not acknowledged to the delivery loop, so it stays in the journal.
        self._executor.submit(self._poster.close)
        self._executor.shutdown(wait=False)
