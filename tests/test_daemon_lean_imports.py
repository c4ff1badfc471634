"""A running daemon imports only what it runs (issue 17: its memory is a target).

`wattd run` parses a plain command line without argparse (whose help formatter
imports shutil, bz2 and lzma); the journal writes without aiofiles (tempfile,
random); error hints import difflib only on the error path; libc is reached
without ctypes.util (ldconfig, tempfile, shutil); marker addresses are resolved
without the idna codec (unicodedata). Checked on a real daemon reading a real
pty with a journal only, after it has journalled readings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_proc import journal_points, write_config
from wattd.cli import cmd_run
from wattd.protocols.registry import get_driver
from wattd.simulator.meter import make_chip
from wattd.simulator.pty_server import PtyMeterServer

NOT_IMPORTED = ["argparse", "shutil", "tempfile", "difflib", "ctypes.util", "encodings.idna",
                "aiofiles", "bz2", "lzma"]


@pytest.mark.parametrize("argv", [[], ["-c", "/x.yaml"], ["--config=/x.yaml", "--simulate"],
                                  ["--simulate", "--unpaced", "--config", "/x.yaml"]])
def test_fast_run_parser_agrees_with_argparse(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    cmd_run.configure(parser)
    fast = cmd_run.parse_fast(argv)
    assert fast is not None
    assert vars(fast) == vars(parser.parse_args(argv))


@pytest.mark.parametrize("argv", [["-h"], ["--conf", "/x"], ["-c"], ["extra"], ["--simulate=1"]])
def test_odd_run_lines_are_left_to_argparse(argv: list[str]) -> None:
    assert cmd_run.parse_fast(argv) is None


def test_a_running_daemon_has_not_imported_what_it_does_not_use(tmp_path: Path) -> None:
    meter = PtyMeterServer(make_chip("gb202", power_w=40.0, seed=3), get_driver("gb202").serial,
                           link_path=tmp_path / "tty").start()
    try:
        cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202",
                                       "port": str(tmp_path / "tty")}])
        journal = tmp_path / "journal"
        # The daemon's own entry point, in a child interpreter: once readings are in the
        # journal, the thread reports which of NOT_IMPORTED are loaded and stops it.
        code = f"""
import os, signal, sys, threading, time
from pathlib import Path
def watch():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.stat().st_size > 0 for p in Path({str(journal)!r}).glob("*.lp")):
            break
        time.sleep(0.1)
    time.sleep(1.5)  # a few journal cycles and an fsync
    print("LOADED", [m for m in {NOT_IMPORTED!r} if m in sys.modules], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, daemon=True).start()
from wattd.cli.main import main
sys.exit(main(["run", "-c", {str(cfg)!r}]))
"""
        proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                              text=True, timeout=60)
    finally:
        meter.stop()
    loaded = [line for line in proc.stdout.splitlines() if line.startswith("LOADED")]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert loaded == ["LOADED []"], proc.stdout[-2000:]
    assert journal_points(journal, "wattd_power"), "the daemon was checked while reading"
