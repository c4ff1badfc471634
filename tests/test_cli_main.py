"""The ``wattd`` entry point as a subprocess: --version, a closed stdout pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_version_flag() -> None:
    res = subprocess.run([sys.executable, "-m", "wattd", "--version"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0
    assert res.stdout.startswith("wattd ")


def test_closed_stdout_pipe_is_not_a_traceback() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "wattd", "check-config",
                             str(ROOT / "config.example.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # like `| head -c 0`
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
    assert proc.returncode == 0
