"""Pure parts of the sinks: HTTP classification, Retry-After, body encoding."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from wattd.sinks.base import (
    RETRY_AFTER_MAX_S,
    SinkAuthError,
    SinkConfigError,
    SinkRejectedError,
    SinkUnavailableError,
    classify_http,
    encode_body,
    parse_retry_after,
)


@pytest.mark.parametrize("status", [200, 204])
def test_success_is_none(status: int) -> None:
    assert classify_http(status, b"", {}, what="x") is None


@pytest.mark.parametrize(("status", "kind"), [
    (401, SinkAuthError), (403, SinkAuthError),
    (400, SinkRejectedError), (413, SinkRejectedError), (422, SinkRejectedError),
    (429, SinkUnavailableError), (500, SinkUnavailableError), (502, SinkUnavailableError),
    (503, SinkUnavailableError), (504, SinkUnavailableError),
    (404, SinkConfigError), (405, SinkConfigError),
])
def test_classification(status: int, kind: type[Exception]) -> None:
    err = classify_http(status, b'{"error":"x"}', {}, what="http://db")
    assert isinstance(err, kind)
    assert f"HTTP {status}" in str(err)
    assert "http://db" in str(err)


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"error":"partial write: field type conflict: input field \\"power_w\\" ... dropped=1"}',
     "field_type_conflict"),
    (b'{"error":"unable to parse \'x\': missing fields"}', "unable_to_parse"),
    (b'{"error":"partial write: points beyond retention policy dropped=3"}',
     "points_beyond_retention"),
    (b'{"error":"something else"}', "http_400"),
])
def test_rejection_reason(body: bytes, reason: str) -> None:
    err = classify_http(400, body, {}, what="x")
    assert isinstance(err, SinkRejectedError)
    assert err.reason == reason


def test_retry_after_header_is_carried() -> None:
    err = classify_http(503, b"", {"Retry-After": "7"}, what="x")
    assert isinstance(err, SinkUnavailableError)
    assert err.retry_after_s == 7.0
    err = classify_http(429, b"", {"retry-after": "2.5"}, what="x")
    assert isinstance(err, SinkUnavailableError)
    assert err.retry_after_s == 2.5


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("1e9") == RETRY_AFTER_MAX_S
    # HTTP date: 30 s after "now".
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == pytest.approx(30.0)


def test_encode_body() -> None:
    lines = [b"m f=1 1", b"m f=2 2"]
    assert encode_body(lines, use_gzip=False) == b"m f=1 1\nm f=2 2\n"
    assert gzip.decompress(encode_body(lines, use_gzip=True)) == b"m f=1 1\nm f=2 2\n"


def test_sinks_import_neither_influxdb_client_nor_urllib3() -> None:
    """Both sinks are a POST over http.client: influxdb-client (and numpy behind it)
    and urllib3 are never imported."""
    code = (
        "import sys\n"
        "from wattd.config import InfluxConfig\n"
        "from wattd.sinks import make_sink\n"
        "make_sink(InfluxConfig(url='http://127.0.0.1:1', api='v1', database='d'))\n"
        "make_sink(InfluxConfig(url='http://127.0.0.1:1', api='v2', bucket='b'))\n"
        "heavy = [m for m in ('influxdb_client', 'urllib3', 'numpy')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_v2_body_is_gzip_level_1_on_the_wire() -> None:
    """influxdb-client's own gzip is level 9; the v2 sink's write bodies are level 1
    (gzip header XFL=4), Content-Encoding gzip, and decompress to the lines."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from wattd.config import InfluxConfig
    from wattd.sinks.v2 import InfluxV2Sink

    seen: list[tuple[str, str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Content-Encoding"), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    lines = [f"m,meter=a v={i}.5 {i}".encode() for i in range(200)]
    try:
        for use_gzip in (True, False):
            sink = InfluxV2Sink(InfluxConfig(url=f"http://127.0.0.1:{server.server_port}",
                                             api="v2", org="o", bucket="b", gzip=use_gzip))
            try:
                await sink.write(lines)
            finally:
                await sink.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    (path, encoding, body), (_, plain_encoding, plain) = seen
    assert path.startswith("/api/v2/write")
    assert encoding == "gzip"
    assert body[8] == 4  # XFL: fastest compression
    assert gzip.decompress(body) == plain == b"\n".join(lines) + b"\n"  # as the v1 sink
    assert plain_encoding is None
