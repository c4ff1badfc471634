"""A real `wattd run --simulate` daemon for the exec/probe tests, and
`wattd exec` / `wattd probe` run as real subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.daemon_proc import DaemonProc, journal_points, write_config
from wattd.lineprotocol import Point
from wattd.markers.client import NoReplyError, send_marker


class Rig:
    def __init__(self, tmp: Path, meter: dict[str, Any] | None = None,
                 markers: dict[str, Any] | None = None) -> None:
        self.tmp = tmp
        extra = {"markers": markers} if markers else {}
        self.config = write_config(tmp, [meter or {"name": "sim", "driver": "simulated",
                                                   "power_w": 4.0}], **extra)
        import yaml

        listen = yaml.safe_load(self.config.read_text())["markers"]["listen"][0]
        self.to = listen
        self.journal = tmp / "journal"
        self.daemon = DaemonProc(self.config)

    def __enter__(self) -> Rig:
        self.daemon.__enter__()
        deadline = time.monotonic() + 60
        while True:
            assert self.daemon.proc.poll() is None, self.daemon.log_text()[-3000:]
            try:
                if send_marker("ping", to=self.to, timeout_s=0.5, retries=1).ok:
                    break
            except NoReplyError:
                pass
            assert time.monotonic() < deadline, self.daemon.log_text()[-3000:]
        self.daemon.wait_until(lambda: len(self.points("wattd_power")) >= 5, what="readings")
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self.daemon.__exit__(*exc)

    def points(self, measurement: str) -> list[Point]:
        return journal_points(self.journal, measurement)

    def wattd(self, *args: str, timeout_s: float = 180.0,
              **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wattd", *args], capture_output=True,
                              text=True, timeout=timeout_s, check=False, **kw)

    def runs(self, name: str) -> list[Point]:
        return [p for p in self.points("wattd_run") if p.tags.get("run") == name]
