"""`wattd run --simulate` as systemd runs it: notify socket, watchdog, reload, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_proc import free_udp_port

CONFIG = """\
meters:
  - name: pi
    driver: gb202
    port: /dev/ttyUSB-wattd-test
    tags: {{host: {host}}}
markers:
  listen: ["127.0.0.1:{port}"]
journal:
  dir: {journal}
log:
  format: json
  level: {level}
"""


class Manager:
    """The service manager's side: an abstract AF_UNIX datagram socket."""

    def __init__(self) -> None:
        self.name = f"wattd-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name.encode())
        self.seen: list[dict[str, str]] = []

    def next(self, timeout_s: float = 30.0) -> dict[str, str]:
        self.sock.settimeout(timeout_s)
        data = self.sock.recv(4096).decode()
        msg = dict(line.split("=", 1) for line in data.split("\n") if line)
        self.seen.append(msg)
        return msg

    def wait_for(self, key: str, timeout_s: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.next(max(0.1, deadline - time.monotonic()))
            if key in msg:
                return msg


@pytest.fixture
def manager() -> Iterator[Manager]:
    m = Manager()
    try:
        yield m
    finally:
        m.sock.close()


def write_config(path: Path, journal: Path, host: str = "pi4", level: str = "info") -> None:
    path.write_text(CONFIG.format(journal=journal, host=host, level=level,
                                  port=free_udp_port()))


def test_notify_watchdog_reload_stop(tmp_path: Path, manager: Manager) -> None:
    cfg = tmp_path / "config.yaml"
    write_config(cfg, tmp_path / "journal")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(NOTIFY_SOCKET="@" + manager.name, WATCHDOG_USEC="1000000")
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wattd", "run", "--simulate", "-c",
                                 str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)
    try:
        ready = manager.wait_for("READY")
        assert "meters: pi" in ready["STATUS"]
        # Regular pings while everything progresses (half of WATCHDOG_USEC).
        assert manager.wait_for("WATCHDOG") == {"WATCHDOG": "1"}
        assert manager.wait_for("WATCHDOG") == {"WATCHDOG": "1"}
        # The periodic one-line status.
        status = next(m for m in iter(manager.next, None) if set(m) == {"STATUS"})
        assert "written" in status["STATUS"]
        assert "\n" not in status["STATUS"]

        # systemctl reload: a changed tag and log level.
        write_config(cfg, tmp_path / "journal", host="pi5", level="debug")
        proc.send_signal(signal.SIGHUP)
        reloading = manager.wait_for("RELOADING")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert "READY" in manager.wait_for("READY")

        # A broken file: refused, the running config stays, the daemon lives on.
        cfg.write_text("meters: [\n")
        proc.send_signal(signal.SIGHUP)
        manager.wait_for("RELOADING")
        ready = manager.wait_for("READY")
        assert ready["STATUS"].startswith("config reload failed")
        assert manager.wait_for("WATCHDOG") == {"WATCHDOG": "1"}
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        assert "STOPPING" in manager.wait_for("STOPPING")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log_text = log_path.read_text()
    assert '"config_reloaded"' in log_text
    assert '"config_reload_failed"' in log_text
    assert str(cfg) in log_text  # the error names the file


def test_no_notify_socket_runs_plain(tmp_path: Path) -> None:
    """Outside systemd (and with a malformed watchdog value) the daemon runs and stops."""
    cfg = tmp_path / "config.yaml"
    write_config(cfg, tmp_path / "journal")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env["WATCHDOG_USEC"] = "soon"
    proc = subprocess.Popen([sys.executable, "-m", "wattd", "run", "--simulate", "-c",
                             str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=tmp_path, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if '"daemon_started"' in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = "".join(lines) + out
    assert '"watchdog_usec_malformed"' in text
    assert "Traceback" not in text
