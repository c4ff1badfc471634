"""A small blocking HTTP/1.1 POST client for the sinks: one keep-alive connection per sink.

Both write APIs (InfluxDB 1.x ``/write`` and 2.x ``/api/v2/write``) are one POST
of line protocol, so the standard library's ``http.client`` is all a sink needs:
no urllib3 pool, no influxdb-client (whose import alone pulls in numpy when it
is installed, and doubled the delivery's memory); an ``ssl`` context is made
only for an ``https`` URL. Runs in the sink's worker thread; never retries by itself
except once, on a fresh connection, when a reused keep-alive connection turns
out to have been closed by the server (the body is then sent again: delivery is
at least once anyway).
"""

from __future__ import annotations

import http.client
import select
from collections.abc import Mapping
from typing import Any

from wattd.netaddr import HttpTarget
from wattd.sinks.base import SinkUnavailableError

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


class HttpPoster:
    """POSTs to paths of one ``http(s)://host[:port][/base]`` URL."""

    def __init__(self, url: str, *, timeout_s: float, verify_tls: bool = True,
                 ca_file: str | None = None) -> None:
        target = HttpTarget.from_url(url)
        self.url = url
        self.https = target.https
        self.host = target.host
        self.port = target.port
        self.base_path = target.base_path
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self._conn: http.client.HTTPConnection | None = None
        self._ssl_context: Any = None

    def _connect(self) -> http.client.HTTPConnection:
        if not self.https:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        if self._ssl_context is None:
            import ssl

            ctx = ssl.create_default_context(cafile=self.ca_file)
            if not self.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl_context = ctx
        return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                           context=self._ssl_context)

    def _usable(self, conn: http.client.HTTPConnection) -> bool:
        """An idle keep-alive connection the server has not closed (nothing to read)."""
        sock = conn.sock
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def post(self, path: str, body: bytes,
             headers: Mapping[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of ``POST base_path + path``. Raises
        SinkUnavailableError for a network failure or timeout."""
        target = self.base_path + path
        for attempt in (0, 1):
            conn = self._conn
            reused = conn is not None and self._usable(conn)
            if conn is not None and not reused:
                conn.close()
            if not reused:
                conn = self._conn = self._connect()
            assert conn is not None
            try:
                conn.request("POST", target, body=body, headers=dict(headers))
                resp = conn.getresponse()
                data = resp.read()
            except _STALE as err:
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed the idle connection: once more, fresh
                raise SinkUnavailableError(f"{self.url}: {type(err).__name__}: {err}") from err
            except (OSError, http.client.HTTPException) as err:
                self.close()
                raise SinkUnavailableError(f"{self.url}: {type(err).__name__}: {err}") from err
            if resp.will_close:
                self.close()
            return resp.status, data, dict(resp.getheaders())
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
