"""`wattd clock` exit codes and output through an injectable adjtimex reader."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from wattd.cli import cmd_clock
from wattd.cli.main import main
from wattd.clock import adjtimex as ax
from wattd.errors import ConfigError, UsageError

CONFIG = """\
meters:
  - name: pi
    driver: simulated
    power_w: 3.5
clock:
  max_error_ms: {max_error_ms}
"""


def _run(state: ax.KernelClockState, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cmd_clock.configure(parser)
    out = io.StringIO()
    code = cmd_clock.run_clock(parser.parse_args(list(argv)), ax.StaticReader(state), out)
    return code, out.getvalue()


@pytest.mark.parametrize(("state", "expected"), [
    (ax.SYNCED_CHRONY, 0),
    (ax.SYNCED_TIMESYNCD, 0),
    (ax.CHRONY_NO_RTCSYNC, 0),
    (ax.UNSYNCED, 1),
    (ax.KernelClockState(ax.TIME_OK, ax.STA_PLL, maxerror_us=150_000, esterror_us=900), 1),
])
def test_exit_code_follows_the_verdict(state: ax.KernelClockState, expected: int) -> None:
    code, text = _run(state)
    assert code == expected, text
    assert text.startswith("clock     SYNCHRONISED" if expected == 0
                           else "clock     NOT SYNCHRONISED")
    assert "rtcsync" in text  # the caveats are always printed
    assert "timesyncd" in text


def test_text_shows_kernel_fields() -> None:
    _, text = _run(ax.SYNCED_CHRONY)
    assert "kernel    TIME_OK, status PLL NANO" in text
    assert "maxerror  8.000 ms\n" in text
    assert "esterror  0.150 ms" in text
    _, text = _run(ax.SYNCED_TIMESYNCD)
    assert "(not an error estimate)" in text


def test_max_error_option() -> None:
    assert _run(ax.SYNCED_CHRONY, "--max-error-ms", "5")[0] == 1  # maxerror 8 ms
    assert _run(ax.SYNCED_CHRONY, "--max-error-ms", "10")[0] == 0
    with pytest.raises(UsageError):
        _run(ax.SYNCED_CHRONY, "--max-error-ms", "0")


def test_max_error_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "wattd.yaml"
    cfg.write_text(CONFIG.format(max_error_ms=5))
    code, text = _run(ax.SYNCED_CHRONY, "-c", str(cfg), "--format", "json")
    assert code == 1
    assert json.loads(text)["max_error_ms"] == 5
    cfg.write_text(CONFIG.format(max_error_ms=20))
    assert _run(ax.SYNCED_CHRONY, "-c", str(cfg))[0] == 0
    with pytest.raises(ConfigError):
        _run(ax.SYNCED_CHRONY, "-c", str(tmp_path / "missing.yaml"))


def test_json_report() -> None:
    code, text = _run(ax.UNSYNCED, "--format", "json")
    report = json.loads(text)
    assert code == 1
    assert report["ok"] is False
    assert report["basis"] == "unsynchronised"
    assert report["kernel"]["status"] == ["UNSYNC"]
    assert report["kernel"]["maxerror_ms"] == 16000


def test_unreadable_kernel_state_fails() -> None:
    reader = ax.StaticReader(ax.SYNCED_CHRONY)
    reader.error = PermissionError(1, "Operation not permitted")
    parser = argparse.ArgumentParser()
    cmd_clock.configure(parser)
    out = io.StringIO()
    assert cmd_clock.run_clock(parser.parse_args([]), reader, out) == 1
    assert "Operation not permitted" in out.getvalue()


def test_bad_server_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clock", "--server", "host:notaport"]) == 2
    assert "bad port" in capsys.readouterr().err


def test_real_entry_point_matches_the_kernel() -> None:
    proc = subprocess.run([sys.executable, "-m", "wattd", "clock", "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["synced"] else 1)
    assert report["kernel"]["unsync_flag"] == ax.KernelReader().read().unsync_flag


def test_clock_command_is_import_light() -> None:
    code = ("import sys, wattd.cli.cmd_clock; "
            "heavy = [m for m in ('asyncio', 'yaml', 'structlog', 'influxdb_client', 'serial') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == ""
