"""Open a meter's serial port with its line settings; a pseudo-terminal keeps what it accepts.

A Linux pty has no wire, so it cannot keep parity: its termios ``c_cflag``
never holds PARENB, and glibc's ``tcsetattr`` reports EINVAL when the change it
was asked for did not take. pyserial sets the line settings with one
``tcsetattr`` on open, so once a previous reader (a daemon that was SIGKILLed,
leaving the pty in raw mode) has set everything else, the only difference left
is the parity the pty refuses, and every open fails with ``termios.error (22,
'Invalid argument')``. socat- and ser2net-bridged meters are ptys: after a crash
they would never be read again.

So on a pty (and only there: on a real UART a refused setting is a port error,
as it always was) the settings are relaxed one at a time toward 8N1 until the
open succeeds, and the caller is told which ones were refused.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import termios

import serial

from wattd.protocols.base import SerialSettings

# Unix98 pty slaves (/dev/pts/N): char majors 136-143 (Linux devices.txt).
_PTY_SLAVE_MAJORS = range(136, 144)
_LEGACY_PTY_SLAVE_MAJOR = 3  # BSD-style /dev/ttyp*


def is_pty(path: str) -> bool:
    """Whether ``path`` (or what a symlink at ``path`` points to) is a pseudo-terminal slave."""
    try:
        st = os.stat(path)  # follows a symlink (a socat link, the simulator's)
    except OSError:
        return False
    if not stat.S_ISCHR(st.st_mode):
        return False
    major = os.major(st.st_rdev)
    return major in _PTY_SLAVE_MAJORS or major == _LEGACY_PTY_SLAVE_MAJOR


def _serial(path: str, s: SerialSettings) -> serial.Serial:
    return serial.Serial(path, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity,
                         stopbits=s.stopbits, timeout=0, exclusive=True)


def _relaxations(s: SerialSettings) -> list[tuple[str, SerialSettings]]:
    """Cumulative steps toward 8N1: (what was given up so far, the settings to try)."""
    steps: list[tuple[str, SerialSettings]] = []
    refused: list[str] = []
    current = s
    if current.parity != "N":
        refused.append(f"parity={s.parity}")
        current = dataclasses.replace(current, parity="N")
        steps.append((", ".join(refused), current))
    if current.stopbits != 1:
        refused.append(f"stopbits={s.stopbits}")
        current = dataclasses.replace(current, stopbits=1)
        steps.append((", ".join(refused), current))
    if current.bytesize != 8:
        refused.append(f"bytesize={s.bytesize}")
        current = dataclasses.replace(current, bytesize=8)
        steps.append((", ".join(refused), current))
    return steps


def open_serial(path: str, settings: SerialSettings) -> tuple[serial.Serial, str]:
    """The port opened with ``settings``; on a pty that refuses some of them, with
    the ones it accepts. Returns (port, refused) where ``refused`` names the
    settings given up (``"parity=E"``), empty when all applied. Raises what
    pyserial raises when the port cannot be opened (always so on a real UART)."""
    try:
        return _serial(path, settings), ""
    except termios.error as first:
        if not is_pty(path):
            raise
        for refused, relaxed in _relaxations(settings):
            try:
                return _serial(path, relaxed), refused
            except termios.error:
                continue
        raise first from None
