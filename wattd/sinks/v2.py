"""InfluxDB 2.x/3.x sink (also 1.8+ compatibility API and VictoriaMetrics): influxdb-client.

This module imports influxdb-client; `wattd.sinks.make_sink` imports it only
when a v2 sink is configured. The client's synchronous write API runs in one
worker thread per sink; the delivery loop does retries and bisecting, so the
client's own retry machinery stays off.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Sequence
from typing import Any

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from wattd.config import InfluxConfig
from wattd.sinks.base import SinkUnavailableError, classify_http
from wattd.sinks.threaded import ThreadedSink

DEFAULT_BUCKET = "wattd"
DEFAULT_ORG = "wattd"
WRITE_PATH = "/api/v2/write"  # the path influxdb-client gzips request bodies for


def _gzip_fast(conf: Any) -> None:
    """Have the client gzip write bodies at level 1, as the v1 sink does
    (``encode_body``), instead of the library's level 9: the same gzip for the
    database at about a quarter of the CPU (level 9 costs more CPU per line
    than all the rest of a line's delivery)."""
    original = conf.update_request_body

    def update_request_body(path: str, body: Any) -> Any:
        if conf.enable_gzip and path == WRITE_PATH:
            data = body if isinstance(body, bytes) else bytes(body, "utf-8")
            return gzip.compress(data, compresslevel=1, mtime=0)
        return original(path, body)

    conf.update_request_body = update_request_body


class InfluxV2Sink(ThreadedSink):
    """Writes batches with ``WriteApi.write(bucket, org, record=lines, precision=ns)``."""

    def __init__(self, cfg: InfluxConfig) -> None:
        super().__init__(cfg)
        self._client: Any = None
        self._write_api: Any = None
        self._open_client()

    def _open_client(self) -> None:
        # The token is read here, at start and again after a 401: fixing token_file
        # (or the environment of a restarted daemon) needs no code path of its own.
        cfg = self._cfg
        kwargs: dict[str, Any] = {"verify_ssl": cfg.verify_tls}
        if not cfg.verify_tls:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if cfg.ca_file:
            kwargs["ssl_ca_cert"] = cfg.ca_file
        old = self._client
        self._client = InfluxDBClient(
            url=cfg.url, token=cfg.token() or "", org=cfg.org or DEFAULT_ORG,
            timeout=int(cfg.timeout_s * 1000), enable_gzip=cfg.gzip, retries=False,
            connection_pool_maxsize=2, **kwargs)
        if cfg.gzip:
            _gzip_fast(self._client.conf)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        if old is not None:
            old.close()

    async def reload_credentials(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_client)

    def _post(self, lines: Sequence[bytes]) -> None:
        try:
            self._write_api.write(bucket=self._cfg.bucket or DEFAULT_BUCKET,
                                  org=self._cfg.org or DEFAULT_ORG,
                                  record=b"\n".join(lines), write_precision=WritePrecision.NS)
        except ApiException as err:
            headers = dict(err.headers or {})
            error = classify_http(int(err.status or 0), err.body or b"", headers,
                                  what=self._cfg.url)
            if error is None or not err.status:
                raise SinkUnavailableError(f"{self._cfg.url}: {err.reason}") from err
            raise error from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise SinkUnavailableError(f"{self._cfg.url}: {type(err).__name__}: {err}") from err

    async def close(self) -> None:
        client = self._client
        self._executor.submit(client.close)
        self._executor.shutdown(wait=False)
