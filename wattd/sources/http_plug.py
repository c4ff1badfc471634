"""Shelly and Tasmota plugs polled over HTTP: the thin transport (stdlib http.client).

Requests run in a worker thread (``asyncio.to_thread``) on one kept-alive
connection; a reading is stamped at the midpoint of the request's send and
the answer's last byte. A plug that does not answer (refused, timed out, reset)
is a port error: reconnect with backoff. An answer that does not parse, a 401
or a 500 is a counted input error and polling goes on. Shelly: ``GET /shelly``
at each (re)connect tells the generation; Gen2+ gets digest auth, Gen1 basic.
Tasmota: credentials as query parameters.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import secrets
import threading
from typing import Any

from wattd.clock.timesource import Clock, clock_pair
from wattd.netaddr import HttpTarget
from wattd.protocols import http_digest, shelly, tasmota
from wattd.protocols.base import DecodeCounters, DecodeError, Measurement
from wattd.protocols.plausible import RangesLike
from wattd.sources.polled_source import MeterPortError, Stamped

MAX_BODY_BYTES = 1 << 20
_PORT_ERRORS = (OSError, http.client.HTTPException)


class PlugTransport:
    def __init__(self, driver: str, url: str, *, clock: Clock, channel: int = 0,
                 timeout_s: float = 2.0, username: str | None = None,
                 password: str | None = None, plausible: RangesLike | None = None) -> None:
        target = HttpTarget.from_url(url)
        self.driver = driver
        self.port = url
        self._https = target.https
        self._host = target.host
        self._tcp_port = target.port
        self._prefix = target.base_path
        self.clock = clock
        self.channel = channel
        self.timeout_s = timeout_s
        self.username = username
        self.password = password
        self.plausible = plausible
        self.counters = DecodeCounters()
        self.gen: int | None = None
        self.http_errors = 0
        self._decoder: shelly.ShellyDecoder | tasmota.TasmotaDecoder | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._challenge: dict[str, str] | None = None
        self._nc = 0
        self._lock = threading.Lock()
        # One counter tracker per transport: a reconnect keeps the energy count.
        self._counter: Any = None

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        with self._lock:
            self._connect()
            if self.driver == "shelly":
                status, body, _, _ = self._get(shelly.INFO_PATH, auth=False)
                gen = shelly.decode_info(self.counters, status, body)
                if isinstance(gen, DecodeError):
                    raise MeterPortError(f"{self.port}/shelly: {gen.detail}")
                self.gen = gen
                decoder: Any = shelly.ShellyDecoder(gen, self.channel, self.plausible)
            else:
                decoder = tasmota.TasmotaDecoder(self.channel, self.plausible)
            decoder.counters = self.counters
            if self._counter is None:
                self._counter = decoder.counter
            decoder.counter = self._counter
            self._decoder = decoder

    async def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connect(self) -> None:
        if self._conn is not None:
            self._conn.close()
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._conn = cls(self._host, self._tcp_port, timeout=self.timeout_s)

    # ------------------------------------------------------------------ HTTP
    def _headers(self, path: str, auth: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "Connection": "keep-alive"}
        if not auth or self.password is None or self.driver != "shelly":
            return headers
        user = self.username or "admin"
        if self.gen == 1:
            token = base64.b64encode(f"{user}:{self.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        elif self._challenge is not None:
            self._nc += 1
            headers["Authorization"] = http_digest.authorization(
                self._challenge, method="GET", uri=path, username=user, password=self.password,
                cnonce=secrets.token_hex(8), nc=self._nc)
        return headers

    def _get(self, path: str, *, auth: bool = True) -> tuple[int, bytes, int, int]:
        """(status, body, send realtime ns, send boottime ns); port errors raise."""
        full = self._prefix + path
        for attempt in range(2):
            conn = self._conn
            if conn is None:
                raise MeterPortError("not connected")
            real0, boot0 = clock_pair(self.clock)
            try:
                conn.request("GET", full, headers=self._headers(full, auth))
                response = conn.getresponse()
                body = response.read(MAX_BODY_BYTES)
            except TimeoutError:
                self._conn = None
                conn.close()
                raise MeterPortError(f"no answer within {self.timeout_s:g} s") from None
            except _PORT_ERRORS as exc:
                self._conn = None
                conn.close()
                raise MeterPortError(f"{type(exc).__name__}: {exc}") from None
            if response.will_close:
                self._connect()
            if (response.status == 401 and auth and attempt == 0 and self.password is not None
                    and self.driver == "shelly" and self.gen != 1):
                challenge = http_digest.parse_challenge(
                    response.getheader("WWW-Authenticate", "") or "")
                if challenge is not None and http_digest.supported(challenge):
                    self._challenge, self._nc = challenge, 0
                    continue  # answer the (new) challenge once
            return response.status, body, real0, boot0
        return response.status, body, real0, boot0

    def _poll(self) -> Stamped:
        with self._lock:
            decoder = self._decoder
            if decoder is None:
                raise MeterPortError("not connected")
            if isinstance(decoder, shelly.ShellyDecoder):
                path = decoder.request_path()
            else:
                path = tasmota.request_path(
                    (self.username or "admin") if self.password is not None else None,
                    self.password)
            status, body, real0, boot0 = self._get(path)
            real1, boot1 = clock_pair(self.clock)
            if status != 200:
                self.http_errors += 1
            t_ns, t_boot_ns = (real0 + real1) // 2, (boot0 + boot1) // 2
            event = decoder.decode(status, body, t_ns)
        if isinstance(event, Measurement):
            return Stamped(event, t_ns, t_boot_ns)
        return Stamped(event)

    async def poll(self) -> list[Stamped]:
        return [await asyncio.to_thread(self._poll)]

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"http_errors": self.http_errors}
        if self.gen is not None:
            out["gen"] = self.gen
        return out
