"""SNTP: pure packet code, and `wattd clock --server` against a real chronyd on loopback.

chronyd runs with -x (never touches the system clock), `local stratum 8` (serves
its own time with no upstream), on a free unprivileged UDP port bound to
127.0.0.1, no command port, pid/drift files in a temp dir; stopped by pid.
Missing chronyd: skipped outside CI, a failure in CI (CI=true).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port
from wattd.cli import cmd_clock
from wattd.clock import adjtimex as ax
from wattd.clock import sntp
from wattd.clock.timesource import SYSTEM_CLOCK

S = 1_000_000_000
MS = 1_000_000
NOW = 1_764_000_000 * S  # 2025-11


# -- pure packet code ----------------------------------------------------------

def _reply(nonce: int, t2_ns: int, t3_ns: int, *, leap: int = 0, version: int = 4,
           mode: int = 4, stratum: int = 2, ref: bytes = b"\x7f\x00\x00\x01") -> bytes:
    first = (leap << 6) | (version << 3) | mode
    return sntp.NTP_PACKET.pack(first, stratum, 6, -20, 0, 0, ref, sntp.unix_ns_to_ntp(t2_ns),
                                nonce, sntp.unix_ns_to_ntp(t2_ns), sntp.unix_ns_to_ntp(t3_ns))


def test_request_packet() -> None:
    packet = sntp.build_request(0x1122334455667788)
    assert len(packet) == 48
    assert packet[0] == 0x23  # LI 0, version 4, mode 3
    assert packet[40:48] == bytes.fromhex("1122334455667788")


def test_four_timestamp_formula() -> None:
    # server 250 ms ahead; 10 ms each way; 2 ms in the server
    t1 = NOW
    t2 = t1 + 10 * MS + 250 * MS
    t3 = t2 + 2 * MS
    t4 = t3 - 250 * MS + 10 * MS
    result = sntp.parse_reply(_reply(42, t2, t3), 42, t1, t4, "x")
    assert abs(result.offset_ns - 250 * MS) < 1000  # NTP fractions: sub-us rounding
    assert abs(result.delay_ns - 20 * MS) < 1000
    assert result.stratum == 2
    assert result.ref_id == "127.0.0.1"


def test_ntp_timestamps_round_trip_across_the_2036_era() -> None:
    for unix_ns in (NOW, 2_085_978_496 * S + 123_456_789, 2_200_000_000 * S + 5):
        ntp = sntp.unix_ns_to_ntp(unix_ns)
        assert abs(sntp.ntp_to_unix_ns(ntp, unix_ns + 3600 * S) - unix_ns) <= 1


@pytest.mark.parametrize(("kwargs", "nonce", "message"), [
    ({"mode": 3}, 7, "not a server reply"),
    ({"version": 0}, 7, "version"),
    ({}, 8, "originate"),
    ({"stratum": 0, "ref": b"RATE"}, 7, "kiss-o'-death from server: RATE"),
    ({"leap": 3}, 7, "not synchronised"),
    ({"stratum": 16}, 7, "not synchronised"),
])
def test_bad_replies_refused(kwargs: dict[str, object], nonce: int, message: str) -> None:
    data = _reply(7, NOW, NOW, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(sntp.SntpError, match=message):
        sntp.parse_reply(data, nonce, NOW, NOW)


def test_short_and_zero_replies_refused() -> None:
    with pytest.raises(sntp.SntpError, match="short"):
        sntp.parse_reply(b"\x24" * 20, 1, NOW, NOW)
    zero = bytearray(_reply(7, NOW, NOW))
    zero[40:48] = bytes(8)
    with pytest.raises(sntp.SntpError, match="zero"):
        sntp.parse_reply(bytes(zero), 7, NOW, NOW)


@pytest.mark.parametrize(("text", "expected"), [
    ("pool.ntp.org", ("pool.ntp.org", 123)),
    ("127.0.0.1:1123", ("127.0.0.1", 1123)),
    ("[::1]:1123", ("::1", 1123)),
    ("[::1]", ("::1", 123)),
    ("::1", ("::1", 123)),
])
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert sntp.parse_server(text) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:x", "[::1", "[::1]x", ":123"])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        sntp.parse_server(text)


# -- a real chronyd ------------------------------------------------------------

def _free_udp_port() -> int:
    return free_port("udp")


def _chronyd() -> str:
    path = shutil.which("chronyd") or next(
        (p for p in ("/usr/sbin/chronyd", "/sbin/chronyd") if os.access(p, os.X_OK)), None)
    if path is None:
        reason = "chronyd not installed (apt-get install chrony)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _ntp_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(sntp.build_request(1), ("127.0.0.1", port))
        try:
            data = sock.recv(512)
        except OSError:
            return False
    return len(data) >= 48 and data[1] != 0


@contextlib.contextmanager
def chrony_server(workdir: Path) -> Iterator[int]:
    binary = _chronyd()
    port = _free_udp_port()
    conf = workdir / "chrony.conf"
    lines = [f"port {port}", "bindaddress 127.0.0.1", "local stratum 8", "allow 127.0.0.1",
             "cmdport 0", f"pidfile {workdir / 'chronyd.pid'}",
             f"driftfile {workdir / 'chrony.drift'}"]
    args = [binary, "-x", "-d", "-f", str(conf)]
    if os.geteuid() == 0:
        lines.append("user root")  # no privilege drop to _chrony (temp dir ownership)
    else:
        args.insert(1, "-U")  # allow a non-root start; -x needs no clock privileges
    conf.write_text("\n".join(lines) + "\n")
    log = (workdir / "chronyd.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not _ntp_answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("chronyd did not start: "
                            + (workdir / "chronyd.log").read_text(errors="replace")[-2000:])
            time.sleep(0.05)
        yield port
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def chrony_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with chrony_server(tmp_path_factory.mktemp("chrony")) as port:
        yield port


class ShiftedClock:
    """Our clock, wrong by ``shift_ns`` (the server then looks off by -shift)."""

    def __init__(self, shift_ns: int) -> None:
        self.shift_ns = shift_ns

    def realtime_ns(self) -> int:
        return SYSTEM_CLOCK.realtime_ns() + self.shift_ns

    def boottime_ns(self) -> int:
        return SYSTEM_CLOCK.boottime_ns()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd_clock.configure(parser)
    return parser.parse_args(list(argv))


def test_query_real_chrony(chrony_port: int) -> None:
    result = sntp.query("127.0.0.1", chrony_port)
    assert result.stratum == 8
    # same host, same clock: offset ~0 and a loopback round trip (generous: shared machine)
    assert abs(result.offset_ms) < 50
    assert 0 <= result.delay_ms < 200


def test_query_sees_a_wrong_local_clock(chrony_port: int) -> None:
    result = sntp.query("127.0.0.1", chrony_port, clock=ShiftedClock(-700 * MS))
    assert abs(result.offset_ms - 700) < 50


def test_cli_server_ok_when_synced_and_offset_small(chrony_port: int) -> None:
    out = io.StringIO()
    code = cmd_clock.run_clock(_args("--server", f"127.0.0.1:{chrony_port}"),
                               ax.StaticReader(ax.SYNCED_CHRONY), out)
    text = out.getvalue()
    assert code == 0, text
    assert f"server    127.0.0.1:{chrony_port}: offset " in text
    assert "stratum 8" in text


def test_cli_server_fails_on_large_offset(chrony_port: int) -> None:
    out = io.StringIO()
    code = cmd_clock.run_clock(_args("--server", f"127.0.0.1:{chrony_port}", "--format", "json"),
                               ax.StaticReader(ax.SYNCED_CHRONY), out, ShiftedClock(300 * MS))
    report = json.loads(out.getvalue())
    assert code == 1
    assert report["synced"] is True  # the kernel is fine; the offset is not
    assert report["server"]["offset_within_limit"] is False
    assert abs(report["server"]["offset_ms"] + 300) < 50
    assert report["ok"] is False


def test_cli_server_fails_when_kernel_unsynced(chrony_port: int) -> None:
    out = io.StringIO()
    code = cmd_clock.run_clock(_args("--server", f"127.0.0.1:{chrony_port}"),
                               ax.StaticReader(ax.UNSYNCED), out)
    assert code == 1
    assert "offset" in out.getvalue()


def test_cli_server_unreachable_fails() -> None:
    out = io.StringIO()
    port = _free_udp_port()  # nothing listens: loopback answers ICMP port unreachable
    code = cmd_clock.run_clock(_args("--server", f"127.0.0.1:{port}", "--timeout", "0.5"),
                               ax.StaticReader(ax.SYNCED_CHRONY), out)
    assert code == 1
    assert "FAILED" in out.getvalue()


def test_cli_subprocess_against_real_chrony(chrony_port: int) -> None:
    """The installed entry point, real kernel state: exit code follows the kernel verdict."""
    proc = subprocess.run([sys.executable, "-m", "wattd", "clock", "--server",
                           f"127.0.0.1:{chrony_port}", "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    report = json.loads(proc.stdout)
    assert report["server"]["stratum"] == 8
    assert abs(report["server"]["offset_ms"]) < 50
    assert proc.returncode == (0 if report["synced"] else 1)
    kernel = ax.KernelReader().read()
    assert report["kernel"]["unsync_flag"] == kernel.unsync_flag

