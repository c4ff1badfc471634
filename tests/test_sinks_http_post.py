"""The sinks' HTTP client (wattd.sinks.http_post) against real loopback servers:
keep-alive reuse, a server that closes idle connections, and network failures."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from wattd.sinks.base import SinkUnavailableError
from wattd.sinks.http_post import HttpPoster


class OneShotServer:
    """Answers each request 204 on a keep-alive connection, then (``close_after``)
    closes that connection without saying so, as servers do with idle ones."""

    def __init__(self, *, close_after: bool) -> None:
        self.close_after = close_after
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.bodies: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while True:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length"))
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.bodies.append(body)
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    if self.close_after:
                        break

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def keepalive() -> Iterator[OneShotServer]:
    server = OneShotServer(close_after=False)
    yield server
    server.close()


@pytest.fixture
def closing() -> Iterator[OneShotServer]:
    server = OneShotServer(close_after=True)
    yield server
    server.close()


def test_keep_alive_connection_is_reused(keepalive: OneShotServer) -> None:
    poster = HttpPoster(f"http://127.0.0.1:{keepalive.port}", timeout_s=5.0)
    try:
        for i in range(3):
            status, _, _ = poster.post("/write", f"m v={i}".encode(), {})
            assert status == 204
    finally:
        poster.close()
    assert keepalive.connections == 1
    assert keepalive.bodies == [b"m v=0", b"m v=1", b"m v=2"]


def test_a_connection_the_server_closed_is_replaced(closing: OneShotServer) -> None:
    poster = HttpPoster(f"http://127.0.0.1:{closing.port}/base/", timeout_s=5.0)
    try:
        for i in range(3):
            status, _, _ = poster.post("/write", f"m v={i}".encode(), {})
            assert status == 204
    finally:
        poster.close()
    assert closing.connections == 3
    assert closing.bodies == [b"m v=0", b"m v=1", b"m v=2"]


def test_nothing_listening_is_sink_unavailable() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens on this port now
    poster = HttpPoster(f"http://127.0.0.1:{port}", timeout_s=2.0)
    with pytest.raises(SinkUnavailableError):
        poster.post("/write", b"m v=1", {})


def test_not_an_http_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HttpPoster("ftp://127.0.0.1/", timeout_s=1.0)
