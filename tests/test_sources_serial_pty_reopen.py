"""A pseudo-terminal reopened after a crash: the line settings it cannot keep do not lock it out.

A Linux pty never keeps parity; once a reader (a daemon SIGKILLed, so nothing
restored the tty) has put it in raw mode, reopening it 8E1 is a tcsetattr whose
only change is the parity, which glibc reports as EINVAL. The port is then
opened with the settings it accepts and a warning that names the refused one.
"""

from __future__ import annotations

import json
import os
import signal
import termios
import time
from pathlib import Path

import pytest
import serial

from tests.daemon_proc import DaemonProc, journal_points, write_config
from wattd.protocols.registry import get_driver
from wattd.simulator.meter import start_simulated_meter
from wattd.sources.serial_open import is_pty, open_serial


def _reading_stamps(journal: Path) -> list[int]:
    return [p.t_ns for p in journal_points(journal, "wattd_power")
            if p.tags.get("meter") == "pi" and "power_w" in p.fields]


def _log_events(text: str) -> list[dict[str, object]]:
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def test_pty_detection(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        link = tmp_path / "ttyUSB0"
        link.symlink_to(name)
        assert is_pty(name)
        assert is_pty(str(link))
        assert not is_pty("/dev/null")  # a character device, not a pty
        (tmp_path / "plain").write_bytes(b"")
        assert not is_pty(str(tmp_path / "plain"))
        assert not is_pty(str(tmp_path / "missing"))
    finally:
        os.close(master)
        os.close(slave)


def test_reopening_a_raw_pty_8e1_gives_up_only_the_parity(tmp_path: Path) -> None:
    settings = get_driver("gb202").serial
    assert settings.parity == "E"
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        port, refused = open_serial(name, settings)  # first open: raw mode is a change
        attrs = termios.tcgetattr(port.fileno())
        os.close(port.fileno())  # a SIGKILLed reader: no restore on close
        port.fd = None
        port.is_open = False
        # Plain pyserial is locked out now (the bug this guards against) ...
        with pytest.raises(termios.error):
            serial.Serial(name, baudrate=settings.baudrate, bytesize=settings.bytesize,
                          parity=settings.parity, stopbits=settings.stopbits, timeout=0)
        # ... while open_serial opens it without the parity, and says so.
        port, refused = open_serial(name, settings)
        try:
            assert refused == "parity=E"
            now = termios.tcgetattr(port.fileno())
            assert now[2] & termios.CSIZE == termios.CS8
            assert now[4] == attrs[4] == termios.B4800  # the baud rate still applied
        finally:
            port.close()
    finally:
        os.close(master)
        os.close(slave)


def test_daemon_sigkilled_and_restarted_reads_the_same_pty_again(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB0"
    server = start_simulated_meter("gb202", power_w=80.0, link_path=link)
    try:
        cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": str(link)}])
        journal = tmp_path / "journal"
        with DaemonProc(cfg, simulate=False) as first:
            first.wait_until(lambda: len(_reading_stamps(journal)) >= 5, what="first readings")
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        t_restart = time.time_ns()
        with DaemonProc(cfg, simulate=False) as second:
            # Generous bound (a loaded machine only makes it longer): at the real rate
            # readings are back well within 2 s of the port opening.
            second.wait_until(
                lambda: sum(t > t_restart for t in _reading_stamps(journal)) >= 10,
                what="readings from the restarted daemon")
            assert second.stop() == 0
            events = _log_events(second.log_text())
    finally:
        server.stop()
    messages = [e.get("event") for e in events]
    assert "meter port unavailable, retrying" not in messages, "the first open must succeed"
    refused = [e for e in events
               if e.get("event") == "pseudo-terminal refused line settings; opened without them"]
    assert refused
    assert refused[0]["refused"] == "parity=E"
    assert refused[0]["meter"] == "pi"
