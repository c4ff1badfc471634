"""SIGHUP reload: live vs restart keys; a broken file keeps the running config."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from wattd.config import load_config
from wattd.daemon.notify import Notifier
from wattd.daemon.reload import Reloader, diff_configs

BASE = """\
meters:
  - name: pi
    driver: simulated
    power_w: 3.5
    tags: {host: pi4}
  - name: laptop
    driver: simulated
    power_w: 20
markers:
  rate: {per_s: 100, burst: 200}
journal:
  dir: {journal}
log:
  level: info
  format: json
"""


def write(path: Path, text: str, journal: Path) -> Path:
    path.write_text(text.replace("{journal}", str(journal)))
    return path


def remove(path: Path) -> None:
    path.unlink()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # A reload re-runs setup_logging (bound to this test's stdout): undo it.
    yield
    structlog.reset_defaults()


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    return write(tmp_path / "config.yaml", BASE, tmp_path / "journal")


def test_diff_names_changed_leaves(cfg_file: Path, tmp_path: Path) -> None:
    old = load_config(cfg_file)
    text = (BASE.replace("host: pi4", "host: pi5").replace("per_s: 100", "per_s: 50")
            .replace("level: info", "level: debug")
            .replace("  - name: laptop\n    driver: simulated\n    power_w: 20\n",
                     "  - name: desk\n    driver: simulated\n    power_w: 20\n"))
    new = load_config(write(tmp_path / "new.yaml", text, tmp_path / "journal"))
    assert diff_configs(old, new) == [
        "meters.+desk", "meters.-laptop", "meters.pi.tags", "markers.rate.per_s", "log.level"]
    assert diff_configs(old, load_config(cfg_file)) == []


async def test_live_and_restart_keys(cfg_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    running = load_config(cfg_file)
    pi = running.meters[0]  # a component holding its config object
    log_cfg = running.log
    reloader = Reloader(running, str(cfg_file), Notifier(None))
    write(cfg_file, BASE.replace("host: pi4", "host: pi5").replace("level: info", "level: debug")
          .replace("power_w: 3.5", "power_w: 7"), Path(running.journal.dir))
    result = await reloader.reload()
    assert result.ok
    assert result.applied == ["log.level"]
    assert result.needs_restart == ["meters.pi.power_w", "meters.pi.tags"]
    assert running.log.level == "debug"
    assert log_cfg.level == "debug"  # in place: holders of the section see it
    # not applied: the running values stay until a restart
    assert pi.power_w == 3.5
    assert pi.tags == {"host": "pi4"}
    out = capsys.readouterr().out
    assert "config_change_needs_restart" in out
    assert "meters.pi.power_w" in out
    assert reloader.status()["pending_restart"] == ["meters.pi.power_w", "meters.pi.tags"]


async def test_broken_config_keeps_running(cfg_file: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    running = load_config(cfg_file)
    listener_path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(listener_path))
        sock.settimeout(5)
        notifier = Notifier(str(listener_path))
        reloader = Reloader(running, str(cfg_file), notifier)
        write(cfg_file, BASE.replace("level: info", "levle: debug"), Path(running.journal.dir))
        result = await reloader.reload()
        assert not result.ok
        assert "levle" in (result.error or "")
        assert running.log.level == "info"
        reloading = sock.recv(4096).decode()
        ready = sock.recv(4096).decode()
        notifier.close()
    assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert ready.startswith("READY=1\nSTATUS=config reload failed")
    out = capsys.readouterr().out
    assert "config_reload_failed" in out
    assert "keeping the running configuration" in out
    assert str(cfg_file) in out  # the error names the file (and line and key)

    # The file goes missing: the same.
    remove(cfg_file)
    result = await reloader.reload()
    assert not result.ok
    assert "no such file" in (result.error or "")
    assert reloader.status()["failures"] == 2
