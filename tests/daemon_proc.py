"""Run `wattd run` as a real subprocess against a temp journal (test helper)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.ports import free_port
from wattd.journal.reader import iter_lines
from wattd.lineprotocol import Point, parse_line


def write_config(tmp_path: Path, meters: list[dict[str, Any]], **sections: Any) -> Path:
    cfg: dict[str, Any] = {"meters": meters,
                           "journal": {"dir": str(tmp_path / "journal"), "fsync_interval_s": 0.2},
                           "log": {"format": "json", "level": "info"}}
    cfg.update(sections)
    # A free port, never the default 9288: another daemon (a user's, a parallel
    # test) may hold it.
    cfg.setdefault("markers", {"listen": [f"127.0.0.1:{free_udp_port()}"]})
    path = tmp_path / "wattd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def free_udp_port() -> int:
    return free_port("udp")


def journal_points(journal_dir: Path, measurement: str | None = None) -> list[Point]:
    points = []
    for _, line in iter_lines(journal_dir):
        point = parse_line(line)
        if measurement is None or point.measurement == measurement:
            points.append(point)
    return points


class DaemonProc:
    """`python -m wattd run -c CONFIG [--simulate]`, stopped by pid at the end."""

    def __init__(self, config: Path, *, simulate: bool = True,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        args = [sys.executable, "-m", "wattd", "run", "-c", str(config)]
        if simulate:
            args.append("--simulate")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("WATCHDOG_USEC", None)
        full_env.pop("STATE_DIRECTORY", None)
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 60.0,
                   what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wattd exited ({self.proc.returncode}) before {what}:\n"
                                     f"{self.log_text()[-3000:]}")
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> DaemonProc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if not self._log.closed:
            self._log.close()
