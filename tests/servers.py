"""Real database servers for tests: InfluxDB 1.6 (Debian's `influxd`) and VictoriaMetrics.

Each server is a plain context manager (usable from benchmarks and scripts) and is
also exposed as pytest fixtures (imported by tests/conftest.py):

- ``influxdb_server`` (session) / ``influxdb_server_fn`` (function, for tests that
  kill and restart it) / ``influxdb_auth_server`` (function, auth-enabled with an
  admin user) / ``influxdb_tls_server`` (function, HTTPS, self-signed) and
  ``influx_db`` (a fresh, empty database name per test on the session server);
- ``victoria_server`` (session) / ``victoria_server_fn`` (function) and
  ``victoria_label`` (a unique label value per test, for isolation on the shared
  server: VictoriaMetrics has no databases).

Servers run as subprocesses on free loopback ports in temp directories and are
stopped by pid (terminate, then kill). A missing binary skips the test outside
CI and FAILS it in CI (env CI=true): a green CI must have run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from tests.ports import free_port as _free_port

INFLUXD = "influxd"
VICTORIA = "victoria-metrics"
START_TIMEOUT_S = 60.0  # influxd on 2 loaded cores; ready returns at once


def free_port() -> int:
    """A currently free loopback TCP port, outside the ephemeral range (tests/ports.py)."""
    return _free_port("tcp")


def require_binary(name: str) -> str:
    """Path of a server binary; skip (outside CI) or fail (in CI) when missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK)
                                  else None)
    if path is None:
        reason = (f"{name} not installed (apt-get install influxdb victoria-metrics; "
                  "scripts/test installs them)")
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def _http(method: str, url: str, body: bytes | None = None,
          headers: dict[str, str] | None = None, timeout: float = 10.0,
          context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


class _Server:
    """A subprocess server with a data dir that survives kill/restart."""

    name = "server"

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix=f"wattd-{self.name}-")
            workdir = Path(self._own_tmp.name)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    # -- lifecycle ---------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} at start:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self._ready():
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop by pid: SIGTERM, then SIGKILL after `timeout_s`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)

    def kill(self) -> None:
        """Crash it: SIGKILL by pid (data since its last fsync may be lost by the server)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n_bytes: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n_bytes:].decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class InfluxDB1(_Server):
    """Debian's InfluxDB 1.6 (`influxd`), config generated in the work dir.

    With ``auth=True`` auth is enabled and an admin user (``admin_user`` /
    ``admin_password``) is created at first start. With ``tls=True`` it serves
    HTTPS with a self-signed certificate for 127.0.0.1 (``cert_path``: also the
    CA file a client must trust).
    """

    name = "influxd"

    def __init__(self, workdir: Path | None = None, *, auth: bool = False,
                 tls: bool = False) -> None:
        super().__init__(workdir)
        self.binary = require_binary(INFLUXD)
        self.rpc_port = free_port()
        self.auth = auth
        self.tls = tls
        self.cert_path = self.workdir / "cert.pem"
        self.key_path = self.workdir / "key.pem"
        self.ssl_context: ssl.SSLContext | None = None
        if tls:
            self._make_certificate()
        self.admin_user = "admin"
        self.admin_password = "admin-pw"
        self.config_path = self.workdir / "influxdb.conf"
        self._write_config()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _make_certificate(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("openssl not installed")
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", str(self.key_path), "-out", str(self.cert_path),
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        self.ssl_context = ssl.create_default_context(cafile=str(self.cert_path))

    def _request(self, method: str, url: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
        return _http(method, url, body, headers, timeout, self.ssl_context)

    def _write_config(self) -> None:
        d = self.workdir
        self.config_path.write_text(f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / 'meta'}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[retention]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {'true' if self.auth else 'false'}
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  max-body-size = 0
  flux-enabled = false
  https-enabled = {'true' if self.tls else 'false'}
  https-certificate = "{self.cert_path}"
  https-private-key = "{self.key_path}"
""")

    def _command(self) -> list[str]:
        return [self.binary, "-config", str(self.config_path)]

    def _ready(self) -> bool:
        status, _ = self._request("GET", f"{self.url}/ping", timeout=1.0)
        return status == 204

    def start(self) -> None:
        super().start()
        if self.auth:
            # Creating the first admin user is allowed without credentials.
            status, body = self._request("POST", f"{self.url}/query", urllib.parse.urlencode({
                "q": f"CREATE USER {self.admin_user} WITH PASSWORD "
                     f"'{self.admin_password}' WITH ALL PRIVILEGES"}).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
            # An admin from an earlier start (restart) makes this fail; either way
            # the admin credentials must work now.
            del status, body
            self.query("SHOW USERS")

    # -- query helpers -------------------------------------------------------
    def query(self, q: str, db: str | None = None, *, epoch: str = "ns") -> dict[str, Any]:
        """Run InfluxQL (POST /query); raises on an HTTP or statement error."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        status, body = self._request("POST", f"{self.url}/query{self._auth_qs()}",
                             urllib.parse.urlencode(params).encode(),
                             {"Content-Type": "application/x-www-form-urlencoded"})
        result: dict[str, Any] = json.loads(body or b"{}")
        if status != 200:
            raise RuntimeError(f"influxd query {q!r}: {status} {result}")
        for res in result.get("results", []):
            if "error" in res:
                raise RuntimeError(f"influxd query {q!r}: {res['error']}")
        return result

    def _auth_qs(self) -> str:
        # influxd 1.6 reads u/p from the URL only, not from a form body.
        if not self.auth:
            return ""
        return "?" + urllib.parse.urlencode({"u": self.admin_user, "p": self.admin_password})

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def write(self, db: str, lines: str, precision: str = "ns") -> tuple[int, bytes]:
        """Raw /write (for seeding data, e.g. a field type before a conflict test)."""
        params = {"db": db, "precision": precision}
        if self.auth:
            params.update(u=self.admin_user, p=self.admin_password)
        return self._request("POST", f"{self.url}/write?{urllib.parse.urlencode(params)}",
                     lines.encode())

    def rows(self, db: str, measurement: str, where: str = "") -> list[dict[str, Any]]:
        """Every point of a measurement as dicts (time in ns, tags and fields by name)."""
        q = f'SELECT * FROM "{measurement}"' + (f" WHERE {where}" if where else "")
        out: list[dict[str, Any]] = []
        for res in self.query(q, db)["results"]:
            for series in res.get("series", []):
                cols = series["columns"]
                out.extend(dict(zip(cols, values, strict=True)) for values in series["values"])
        return out

    def count(self, db: str, measurement: str, field: str) -> int:
        res = self.query(f'SELECT count("{field}") FROM "{measurement}"', db)["results"][0]
        if "series" not in res:
            return 0
        return int(res["series"][0]["values"][0][1])


class VictoriaMetrics(_Server):
    """VictoriaMetrics single node (`victoria-metrics`), data in the work dir.

    Remember its InfluxDB quirks when asserting: metric name is
    ``{measurement}_{field}``, timestamps are kept in ms, exact duplicates are
    stored, string fields are dropped, and a write answers 204 even when a line
    was skipped.
    """

    name = "victoria-metrics"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.binary = require_binary(VICTORIA)

    def _command(self) -> list[str]:
        return [self.binary,
                f"-storageDataPath={self.workdir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-retentionPeriod=100y",
                "-loggerLevel=WARN",
                "-search.disableCache",
                "-memory.allowedBytes=512MiB"]

    def _ready(self) -> bool:
        status, _ = _http("GET", f"{self.url}/health", timeout=1.0)
        return status == 200

    def flush(self) -> None:
        """Make just-ingested samples visible to queries."""
        _http("GET", f"{self.url}/internal/force_flush")

    def export(self, match: str) -> list[dict[str, Any]]:
        """Raw samples of every series matching a selector (/api/v1/export, ms timestamps).

        Each item: {"metric": {labels}, "values": [...], "timestamps": [ms, ...]}.
        """
        self.flush()
        params = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = _http("GET", f"{self.url}/api/v1/export?{params}", timeout=60.0)
        if status != 200:
            raise RuntimeError(f"victoria-metrics export {match!r}: {status} {body[:500]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(self, match: str) -> list[tuple[dict[str, str], int, float]]:
        """Flat list of (labels, t_ms, value), sorted by time then labels."""
        out: list[tuple[dict[str, str], int, float]] = []
        for series in self.export(match):
            labels = series["metric"]
            out.extend((labels, int(t), float(v))
                       for t, v in zip(series["timestamps"], series["values"], strict=True))
        out.sort(key=lambda s: (s[1], sorted(s[0].items())))
        return out


# -- pytest fixtures ---------------------------------------------------------

@pytest.fixture(scope="session")
def influxdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """One InfluxDB 1.6 for the session; use `influx_db` for a per-test database."""
    server = InfluxDB1(tmp_path_factory.mktemp("influxd"))
    with server:
        yield server


@pytest.fixture
def influx_db(influxdb_server: InfluxDB1) -> Iterator[str]:
    """A fresh database on the session InfluxDB, dropped after the test."""
    db = f"t_{uuid.uuid4().hex[:12]}"
    influxdb_server.create_database(db)
    yield db
    with contextlib.suppress(Exception):
        influxdb_server.query(f'DROP DATABASE "{db}"')


@pytest.fixture
def influxdb_server_fn(tmp_path: Path) -> Iterator[InfluxDB1]:
    """A private InfluxDB 1.6 for a test that kills or restarts it."""
    with InfluxDB1(tmp_path / "influxd") as server:
        yield server


@pytest.fixture
def influxdb_auth_server(tmp_path: Path) -> Iterator[InfluxDB1]:
    """A private InfluxDB 1.6 with auth enabled and an admin user."""
    with InfluxDB1(tmp_path / "influxd-auth", auth=True) as server:
        yield server


@pytest.fixture
def influxdb_tls_server(tmp_path: Path) -> Iterator[InfluxDB1]:
    """A private InfluxDB 1.6 serving HTTPS with a self-signed cert (`cert_path`)."""
    with InfluxDB1(tmp_path / "influxd-tls", tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def victoria_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """One VictoriaMetrics for the session; isolate tests with `victoria_label`."""
    with VictoriaMetrics(tmp_path_factory.mktemp("victoria")) as server:
        yield server


@pytest.fixture
def victoria_server_fn(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A private VictoriaMetrics for a test that kills or restarts it."""
    with VictoriaMetrics(tmp_path / "victoria") as server:
        yield server


@pytest.fixture
def victoria_label() -> str:
    """A unique value for a test's own tag (e.g. meter=<it>) on the shared VictoriaMetrics."""
    return f"t{uuid.uuid4().hex[:12]}"
