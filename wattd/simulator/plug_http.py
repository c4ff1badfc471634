"""Simulated Shelly (Gen1 / Gen2) and Tasmota plugs: loopback HTTP servers in a thread.

The plug's meter refreshes every ``refresh_s`` (about 1 s on the real plugs):
between refreshes every answer carries the same values, as on the device.
Energy is integrated continuously and reported in the plug's own unit and
rounding (Shelly Gen2 Wh, Gen1 whole watt-minutes, Tasmota kWh to 3 decimals).
With a ``password`` the plug wants auth (Shelly Gen2: SHA-256 digest; Gen1:
basic; Tasmota: ``user``/``password`` query parameters, else the 200 WARNING).
Faults for tests: ``status_override`` (e.g. 500), ``drop_power`` (an answer
without the power field), ``garbage`` (a body that is not JSON).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wattd.protocols import http_digest, shelly, tasmota
from wattd.simulator.power_profile import PowerSource

REALM = "shellyplusplugs-sim"


class PlugModel:
    """The plug's state (thread-safe): power, refresh, energy, faults."""

    def __init__(self, kind: str, power: PowerSource, *, gen: int = 2, channel: int = 0,
                 voltage_v: float = 230.0, power_factor: float = 0.9, refresh_s: float = 1.0,
                 username: str = "admin", password: str | None = None) -> None:
        self.kind = kind
        self.gen = gen
        self.channel = channel
        self.power = power
        self.voltage_v = voltage_v
        self.power_factor = power_factor
        self.refresh_s = refresh_s
        self.username = username
        self.password = password
        self.nonce = secrets.token_hex(8)
        self.status_override: int | None = None
        self.drop_power = False
        self.garbage = False
        self.requests = 0
        self.answer_delay_s = 0.0  # the plug takes this long to answer (after reading)
        self.lock = threading.Lock()
        self._t0 = time.monotonic()
        self._last_t = 0.0
        self.energy_j = 0.0
        self._held: tuple[float, float] | None = None  # (refresh time, power)

    def advance(self) -> float:
        """Integrate to now; the power the meter shows now (held between refreshes)."""
        t = time.monotonic() - self._t0
        step = 0.01
        while self._last_t < t:
            dt = min(step, t - self._last_t)
            self.energy_j += self.power.power_at(self._last_t + dt / 2) * dt
            self._last_t += dt
        if self._held is None or self.refresh_s <= 0 or t - self._held[0] >= self.refresh_s:
            self._held = (t, self.power.power_at(t))
        return self._held[1]

    def body(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            self.requests += 1
            power = self.advance()
            if self.status_override is not None:
                return self.status_override, b'{"error": "simulated"}'
            if self.garbage:
                return 200, b"<html>not json</html>"
            current = power / (self.voltage_v * self.power_factor) if power else 0.0
            if self.kind == "tasmota":
                body = tasmota.status_body(power_w=power, voltage_v=self.voltage_v,
                                           current_a=current, pf=self.power_factor,
                                           total_kwh=self.energy_j / 3.6e6)
                if self.drop_power:
                    doc = json.loads(body)
                    del doc["StatusSNS"]["ENERGY"]["Power"]
                    body = json.dumps(doc).encode()
                return 200, body
            body = shelly.status_body(self.gen, self.channel, power_w=power,
                                      voltage_v=self.voltage_v, current_a=current,
                                      pf=self.power_factor, energy_wh=self.energy_j / 3600)
            if self.drop_power:
                doc = json.loads(body)
                doc.pop("apower", None)
                for meter in doc.get("meters", []):
                    meter.pop("power", None)
                body = json.dumps(doc).encode()
            return 200, body


class _Handler(BaseHTTPRequestHandler):
    server: _PlugHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and --simulate would flood stderr

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        model = self.server.model
        parts = urlsplit(self.path)
        if model.kind == "shelly":
            if parts.path == shelly.INFO_PATH:
                self._send(200, shelly.info_body(model.gen, auth=model.password is not None))
                return
            want = urlsplit(shelly.status_path(model.gen, model.channel))
            if parts.path != want.path or (want.query and parts.query != want.query):
                self._send(404, b'{"code": 404, "message": "No handler"}')
                return
            if model.password is not None and not self._shelly_auth(model):
                return
        else:
            query = parse_qs(parts.query)
            if parts.path != "/cm" or query.get("cmnd") != ["Status 10"]:
                self._send(200, b'{"Command": "Unknown"}')
                return
            if model.password is not None and (query.get("user") != [model.username]
                                               or query.get("password") != [model.password]):
                self._send(200, json.dumps(tasmota.AUTH_WARNING).encode())
                return
        status, body = model.body(self.path)
        if model.answer_delay_s:
            time.sleep(model.answer_delay_s)
        self._send(status, body)

    def _shelly_auth(self, model: PlugModel) -> bool:
        header = self.headers.get("Authorization", "")
        if model.gen == 1:
            want = base64.b64encode(f"{model.username}:{model.password}".encode()).decode()
            if header == f"Basic {want}":
                return True
            self._send(401, b"401 Unauthorized", {"WWW-Authenticate": 'Basic realm="shelly"'})
            return False
        assert model.password is not None
        if http_digest.check(header, method="GET", username=model.username,
                             password=model.password, realm=REALM, nonce=model.nonce):
            return True
        challenge = (f'Digest qop="auth", realm="{REALM}", nonce="{model.nonce}", '
                     f"algorithm=SHA-256")
        self._send(401, b'{"code": 401, "message": "unauthorized"}',
                   {"WWW-Authenticate": challenge})
        return False


class _PlugHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: PlugModel, host: str, port: int) -> None:
        self.model = model
        self.open_connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut kept-alive connections too: a plug that is unplugged answers nothing."""
        with self._conn_lock:
            conns = list(self.open_connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class PlugServer:
    """``start()`` serves ``model`` on ``host:port`` (port 0: the OS picks one)."""

    def __init__(self, model: PlugModel, host: str = "127.0.0.1", port: int = 0) -> None:
        self.model = model
        self._server = _PlugHTTPServer(model, host, port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> PlugServer:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, name="sim plug",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
