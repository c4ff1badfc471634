"""`wattd mark` / `wattd status`: the argparse-free fast path and `-c FILE` (SPEC 9.1).

The fast parser must accept exactly the command lines argparse accepts, with the
same values (and leave everything else to argparse); `-c` takes the marker
address and secret from a daemon's config, with the precedence `--to` /
`--secret-file`, then `-c`, then `$WATTD_MARKER`, then 127.0.0.1:9288. Checked
against a real daemon on a non-default port that requires signed markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProc, free_udp_port, write_config
from wattd.cli import cmd_mark, cmd_status
from wattd.markers import client

MARK_LINES = [
    ["start", "run-1"],
    ["stop", "run-1", "--to", "10.0.0.1:9300"],
    ["event", "x", "--tag", "a=b", "--tag=c=d", "--phase", "warm", "--meter=m1"],
    ["abort", "r", "--timeout", "0.5", "--retries", "0", "-c", "/etc/wattd/config.yaml"],
    ["--to", "[::1]:9288", "start", "r", "--secret-file", "/s", "--config=/c.yaml"],
    ["start", "r", "--timeout=2", "--tag", ""],
]
ODD_MARK_LINES = [  # left to argparse: help, abbreviations, missing values, bad input
    ["-h"], ["start"], ["start", "a", "b"], ["begin", "r"], ["start", "r", "--time", "1"],
    ["start", "r", "--timeout", "soon"], ["start", "r", "--tag"], ["start", "r", "--phase", "-x"],
    ["start", "r", "--json"], ["start", "r", "-c=/x"], ["start", "--", "r"],
]


def _argparse(module: object, argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    module.configure(parser)  # type: ignore[attr-defined]
    return vars(parser.parse_args(argv))


@pytest.mark.parametrize("argv", MARK_LINES)
def test_fast_mark_parser_agrees_with_argparse(argv: list[str]) -> None:
    fast = cmd_mark.parse_fast(argv)
    assert fast is not None
    assert vars(fast) == _argparse(cmd_mark, argv)


@pytest.mark.parametrize("argv", [[], ["--json"], ["--to", "h:1", "-c", "f", "--json"]])
def test_fast_status_parser_agrees_with_argparse(argv: list[str]) -> None:
    fast = cmd_status.parse_fast(argv)
    assert fast is not None
    assert vars(fast) == _argparse(cmd_status, argv)


@pytest.mark.parametrize("argv", ODD_MARK_LINES)
def test_fast_parser_leaves_odd_lines_to_argparse(argv: list[str]) -> None:
    assert cmd_mark.parse_fast(argv) is None


def test_defaults_match_the_client() -> None:
    assert cmd_mark.DEFAULT_TIMEOUT_S == client.DEFAULT_TIMEOUT_S
    assert cmd_mark.DEFAULT_RETRIES == client.DEFAULT_RETRIES


def test_mark_imports_nothing_heavy(tmp_path: Path) -> None:
    """A plain `wattd mark` (no -c) runs without argparse, yaml, structlog, asyncio,
    influxdb_client or the config model (a refused send is enough: the import
    path is the same)."""
    code = (
        "import sys\n"
        "from wattd.cli.main import main\n"
        f"rc = main(['mark', 'event', 'x', '--to', '127.0.0.1:{free_udp_port()}',"
        " '--timeout', '0.3', '--retries', '0'])\n"
        "heavy = ['argparse', 'yaml', 'structlog', 'asyncio', 'influxdb_client', 'socket',"
        " 'wattd.config', 'typing']\n"
        "print(rc, [m for m in heavy if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path)
    assert proc.stdout.strip() == "1 []", proc.stdout + proc.stderr


@pytest.fixture
def signed_daemon(tmp_path: Path) -> Iterator[tuple[DaemonProc, Path, str]]:
    """A daemon on a free (non-default) port that refuses unsigned markers."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret-for-the-test\n")
    port = free_udp_port()
    cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": "/dev/none",
                                   "power_w": 50.0}],
                       markers={"listen": [f"127.0.0.1:{port}"], "secret_file": str(secret)})
    with DaemonProc(cfg) as daemon:
        to = f"127.0.0.1:{port}"
        daemon.wait_until(lambda: _wattd("status", "-c", str(cfg)).returncode == 0,
                          what="the daemon answering status")
        yield daemon, cfg, to
        daemon.stop()


def _wattd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "WATTD_MARKER"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "wattd", *args], capture_output=True,
                          text=True, timeout=60, check=False, env=full)


def test_config_gives_address_and_secret(signed_daemon: tuple[DaemonProc, Path, str],
                                         tmp_path: Path) -> None:
    _, cfg, to = signed_daemon
    status = _wattd("status", "-c", str(cfg), "--json")
    assert status.returncode == 0, status.stderr
    assert '"auth":true' in status.stdout
    mark = _wattd("mark", "event", "hello", "--config", str(cfg))
    assert mark.returncode == 0, mark.stderr
    assert mark.stdout.startswith("ok event hello")
    # Without -c the same command reaches the daemon ($WATTD_MARKER) unsigned: refused.
    assert _auth_refusals(cfg) == 0
    unsigned = _wattd("mark", "event", "hello", "--timeout", "1", env={"WATTD_MARKER": to})
    assert unsigned.returncode == 1
    assert _auth_refusals(cfg) >= 1


def _auth_refusals(cfg: Path) -> int:
    status = _wattd("status", "-c", str(cfg), "--json")
    assert status.returncode == 0, status.stderr
    return int(json.loads(status.stdout)["markers"]["counters"].get("auth", 0))


def test_precedence_flags_then_config_then_environment(
        signed_daemon: tuple[DaemonProc, Path, str], tmp_path: Path) -> None:
    _, cfg, to = signed_daemon
    nobody = f"127.0.0.1:{free_udp_port()}"
    # -c beats $WATTD_MARKER
    via_config = _wattd("mark", "event", "e1", "-c", str(cfg), env={"WATTD_MARKER": nobody})
    assert via_config.returncode == 0, via_config.stderr
    # --to beats -c (nothing listens there)
    via_to = _wattd("mark", "event", "e2", "-c", str(cfg), "--to", nobody, "--timeout", "0.5")
    assert via_to.returncode == 1
    assert "no reply" in via_to.stderr
    # --secret-file beats the config's secret (a wrong one: the daemon refuses it)
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-secret\n")
    refused = _auth_refusals(cfg)
    via_secret = _wattd("mark", "event", "e3", "-c", str(cfg), "--secret-file", str(wrong),
                        "--timeout", "1")
    assert via_secret.returncode == 1
    assert _auth_refusals(cfg) > refused
    # --to with -c still takes the secret from the config
    to_and_config = _wattd("mark", "event", "e4", "--to", to, "-c", str(cfg))
    assert to_and_config.returncode == 0, to_and_config.stderr


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    missing = _wattd("mark", "event", "x", "-c", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "nope.yaml" in missing.stderr
