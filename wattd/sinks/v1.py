"""InfluxDB 1.x sink: POST line protocol to ``/write`` (db, rp, ns precision, basic auth).

Talks to Debian's / Raspberry Pi OS's `influxdb` 1.6 package and to anything
speaking the 1.x write endpoint. urllib3 (already brought in by
influxdb-client) does the HTTP/HTTPS with a keep-alive pool; requests run in
one worker thread per sink so the event loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Sequence

import urllib3

from wattd.config import InfluxConfig
from wattd.logsetup import get_logger
from wattd.sinks.base import SinkUnavailableError, classify_http, encode_body
from wattd.sinks.threaded import ThreadedSink

DEFAULT_DATABASE = "wattd"

log = get_logger("wattd.sinks")


def tls_pool(cfg: InfluxConfig, *, maxsize: int = 2) -> urllib3.PoolManager:
    """A connection pool honouring `verify_tls` and `ca_file`; no urllib3-level retries."""
    timeout = urllib3.Timeout(connect=min(cfg.timeout_s, 5.0), read=cfg.timeout_s)
    kwargs: dict[str, object] = {"maxsize": maxsize, "timeout": timeout, "retries": False}
    if cfg.url.startswith("https:"):
        if cfg.verify_tls:
            kwargs["cert_reqs"] = "CERT_REQUIRED"
            if cfg.ca_file:
                kwargs["ca_certs"] = cfg.ca_file
        else:
            # The user chose this (a self-signed box on the LAN): say it once in the log,
            # not once per request.
            log.warning("tls_verification_disabled", url=cfg.url)
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            kwargs["cert_reqs"] = "CERT_NONE"
            kwargs["assert_hostname"] = False
    return urllib3.PoolManager(**kwargs)  # type: ignore[arg-type]


class InfluxV1Sink(ThreadedSink):
    """Writes batches to ``{url}/write?db=..&rp=..&precision=ns``."""

    def __init__(self, cfg: InfluxConfig) -> None:
        super().__init__(cfg)
        base = cfg.url.rstrip("/")
        params = {"db": cfg.database or DEFAULT_DATABASE, "precision": "ns"}
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        self._write_url = f"{base}/write?{urllib.parse.urlencode(params)}"
        self._pool = tls_pool(cfg)
        self._auth_header: dict[str, str] = {}
        self._load_credentials()

    def _load_credentials(self) -> None:
        # Read at start and again after a 401, so fixing password_file needs no restart.
        if self._cfg.username:
            password = self._cfg.password() or ""
            self._auth_header = urllib3.util.make_headers(
                basic_auth=f"{self._cfg.username}:{password}")
        else:
            self._auth_header = {}

    async def reload_credentials(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load_credentials)

    def _post(self, lines: Sequence[bytes]) -> None:
        body = encode_body(lines, use_gzip=self._cfg.gzip)
        headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth_header}
        if self._cfg.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            resp = self._pool.request("POST", self._write_url, body=body, headers=headers,
                                      retries=False)
        except urllib3.exceptions.HTTPError as err:
            raise SinkUnavailableError(f"{self._cfg.url}: {type(err).__name__}: {err}") from err
        error = classify_http(resp.status, resp.data, dict(resp.headers), what=self._cfg.url)
        if error is not None:
            raise error

    async def close(self) -> None:
        # A request still running in the thread finishes (bounded by timeout_s); its
        # batch was not acknowledged to the delivery loop, so it stays in the journal.
        self._executor.submit(self._pool.clear)
        self._executor.shutdown(wait=False)
