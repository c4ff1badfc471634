"""Real HTTP load targets on loopback for the load-generator tests: Python's
``http.server`` and Debian's nginx (own config and prefix in a temp dir),
serving the same file, each a subprocess stopped by pid. And helpers that run
the real ``ab`` / ``wrk`` binaries against them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.ports import free_port

BODY = ("wattd load target\n" * 120).encode()  # ~2 KiB, the same for both servers


_PACKAGES = {"ab": "apache2-utils", "wrk": "wrk", "nginx": "nginx-light"}

# A server whose body length changes from one response to the next, so that
# ab counts "Failed requests" with a Length breakdown.
_VARYING = """
import http.server, itertools, sys
counter = itertools.count()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"x" * (100 + next(counter) % 7)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def require_tool(name: str) -> str:
    """Path of ab / wrk / nginx; skip outside CI, FAIL in CI (CI=true) when missing."""
    for path in (shutil.which(name), f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if path and os.access(path, os.X_OK):
            return path
    reason = f"{name} not installed (apt-get install {_PACKAGES.get(name, name)}; " \
             "scripts/test installs it)"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


def serve_dir(tmp: Path) -> Path:
    root = tmp / "www"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_bytes(BODY)
    return root


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}) before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} not listening on {port} after {timeout_s:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextmanager
def python_server(tmp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m http.server`` on a free loopback port: (base URL, process)."""
    root = serve_dir(tmp)
    port = free_port("tcp")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "-d", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_tcp(port, proc, "python http.server")
        yield f"http://127.0.0.1:{port}/", proc
    finally:
        _stop(proc)


@contextmanager
def nginx_server(tmp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Debian's nginx in the foreground with its own config and prefix."""
    nginx = require_tool("nginx")
    root = serve_dir(tmp)
    prefix = tmp / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    port = free_port("tcp")
    conf = prefix / "nginx.conf"
    conf.write_text(
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n  access_log off;\n"
        f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
        f"  scgi_temp_path {prefix}/scgi;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_tcp(port, proc, "nginx")
        yield f"http://127.0.0.1:{port}/", proc
    finally:
        _stop(proc)


@contextmanager
def varying_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Python server answering bodies of changing length (ab: Length failures)."""
    port = free_port("tcp")
    proc = subprocess.Popen([sys.executable, "-c", _VARYING, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_tcp(port, proc, "varying-length server")
        yield f"http://127.0.0.1:{port}/", proc
    finally:
        _stop(proc)


def run_tool(args: list[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the real ab / wrk binary (required: a failure in CI when missing)."""
    path = require_tool(args[0])
    return subprocess.run([path, *args[1:]], capture_output=True, text=True,
                          timeout=timeout_s, check=False)
