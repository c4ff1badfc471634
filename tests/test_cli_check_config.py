"""``wattd check-config`` as a subprocess: exit status and messages naming file, line, key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wattd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattd", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_check_config_cli_ok_and_error(tmp_path: Path) -> None:
    ok = _wattd("check-config", str(ROOT / "config.example.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("meters:\n  - name: a\n    port: x\n    baudrate: fast\n")
    res = _wattd("check-config", str(bad))
    assert res.returncode == 2
    assert f"{bad}:4: key 'meters[0].baudrate'" in res.stderr
    assert "Traceback" not in res.stderr
    missing = _wattd("check-config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
