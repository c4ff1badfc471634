"""`wattd probe` (SPEC 9.3): /proc and cgroup v2 parsers, the process ledger
on real process trees (workers that come and go), and the command sending
real `sample` datagrams to a real UDP socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wattd.markers import wire
from wattd.markers.protocol import parse_message
from wattd.probe import procfs
from wattd.probe.ledger import ProcessLedger
from wattd.probe.run import Cgroup, HostCpu

STAT = ("4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 500 0 0 0 "
        "150 50 7 3 20 0 3 0 123456 1000000 300 18446744073709551615 1 1 0 0 0 0 0 "
        "4096 0 0 0 0 17 1 0 0 0 0 0")


def test_parsers() -> None:
    stat = procfs.parse_pid_stat(STAT)
    assert (stat.pid, stat.comm, stat.state, stat.ppid) == (4242, "my (odd) server", "S", 1)
    assert (stat.cpu_ticks, stat.child_ticks, stat.start_ticks, stat.rss_pages) == (
        200, 10, 123456, 300)
    with pytest.raises(ValueError, match="stat"):
        procfs.parse_pid_stat("garbage")
    assert procfs.parse_host_stat("cpu  10 2 3 100 5 1 1 0 0 0\ncpu0 1 2 3 4\n") == (17, 122)
    assert procfs.parse_cpu_stat("usage_usec 306201599\nuser_usec 2\n") == 306201599
    assert procfs.parse_meminfo_used("MemTotal: 1000 kB\nMemFree: 1 kB\n"
                                     "MemAvailable: 400 kB\n") == 600 * 1024
    real = procfs.read_pid_stat(os.getpid())
    assert real is not None
    assert real.pid == os.getpid()
    assert real.ppid == os.getppid()
    busy, total = procfs.parse_host_stat(procfs.read_text("/proc/stat"))
    assert 0 < busy < total


# A parent that starts workers one after another; each burns CPU and exits
# (reaped by the parent), so the CPU moves from the workers to the parent's cutime.
_CHURN = """
import os, sys, time
def burn(s):
    end = time.process_time() + s
    while time.process_time() < end:
        pass
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        burn(float(sys.argv[2]))
        os._exit(0)
    os.waitpid(pid, 0)
print("done", flush=True)
sys.stdin.read()
"""


def _ticks(pid: int) -> int:
    stat = procfs.read_pid_stat(pid)
    assert stat is not None
    return stat.cpu_ticks + stat.child_ticks


def test_ledger_counts_workers_that_exit() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _CHURN, "4", "0.15"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ledger = ProcessLedger([proc.pid])
        start_ticks = _ticks(proc.pid)
        readings = [ledger.read()]
        seen_procs = {readings[0].procs}
        while proc.stdout is not None and proc.poll() is None:
            time.sleep(0.05)
            readings.append(ledger.read())
            seen_procs.add(readings[-1].procs)
            if len(readings) > 400 or _child_done(proc):
                break
        readings.append(ledger.read())
        end_ticks = _ticks(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    cpu = [r.cpu_s for r in readings]
    assert cpu == sorted(cpu)  # monotonic across the churn
    assert 2 in seen_procs  # a worker was seen beside its parent
    grown = cpu[-1] - cpu[0]
    assert grown == pytest.approx((end_ticks - start_ticks) / procfs.CLK_TCK, abs=0.03)
    assert grown >= 0.5  # four workers of 0.15 s


def _child_done(proc: subprocess.Popen[str]) -> bool:
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 0)
    return bool(ready)


def test_ledger_match_and_churn_logic() -> None:
    """Pure logic with injected /proc: a matched worker whose parent is not
    probed keeps its CPU after it exits; a reused pid is a new process."""
    table: dict[int, procfs.ProcStat] = {}
    cmdlines = {1: "init", 10: "carddav --workers 2", 11: "carddav worker", 12: "sh"}

    def put(pid: int, ppid: int, ticks: int, start: int = 5) -> None:
        table[pid] = procfs.ProcStat(pid, "x", "S", ppid, ticks, 0, start, 10)

    put(1, 0, 1000)
    put(10, 1, 100)
    put(11, 1, 50)
    put(12, 1, 7)
    ledger = ProcessLedger((), [lambda text: "carddav" in text],
                           list_pids=lambda: sorted(table), read_stat=table.get,
                           read_cmdline=cmdlines.get)
    first = ledger.read()
    assert first.procs == 2
    assert first.cpu_s == pytest.approx(150 / procfs.CLK_TCK)
    put(11, 1, 80)
    del table[11]  # worker 11 exits; its parent (init) is not probed
    second = ledger.read()
    assert second.exited == ((11, "x"),)
    assert second.cpu_s == pytest.approx(150 / procfs.CLK_TCK)  # its 50 ticks stay
    put(11, 1, 3, start=99)  # pid 11 reused by a new matching process
    third = ledger.read()
    assert third.procs == 2
    assert third.cpu_s == pytest.approx(153 / procfs.CLK_TCK)
    assert 12 in ledger.others


def test_cgroup_v2(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n"
                                       "system_usec 500000\n")
    (tmp_path / "memory.current").write_text("73728000\n")
    (tmp_path / "cgroup.procs").write_text("12\n13\n14\n")
    cpu_s, memory, procs = Cgroup(str(tmp_path)).read()
    assert (cpu_s, memory, procs) == (2.5, 73728000, 3)
    for real in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(real, "cpu.stat")):
            first = Cgroup(real).read()[0]
            assert Cgroup(real).read()[0] >= first > 0
            break
    with pytest.raises(OSError):
        Cgroup(str(tmp_path / "missing"))


def test_host_cpu() -> None:
    host = HostCpu()
    busy_s, pct = host.read()
    assert busy_s > 0
    assert pct is None
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    _, pct = host.read()
    assert pct is not None
    assert 0 < pct <= 100


def _receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30)
    return sock


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattd", "probe", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_probe_command_sends_signed_samples(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    with _receiver() as sock:
        port = sock.getsockname()[1]
        out = _probe("--pid", str(os.getpid()), "--interval", "0.1", "--seconds", "0.45",
                     "--host", "pi", "--meter", "m1", "--to", f"127.0.0.1:{port}",
                     "--secret-file", str(secret))
        assert out.returncode == 0, out.stderr
        messages = []
        sock.settimeout(1)
        try:
            while True:
                messages.append(sock.recv(2048))
        except TimeoutError:
            pass
    assert 4 <= len(messages) <= 6, out.stderr
    parsed = [parse_message(m) for m in messages]
    for msg in parsed:
        assert msg.verb == "sample"
        assert msg.name == "pi"
        assert msg.meter == "m1"
        assert msg.ts_ns is not None
        assert abs(msg.ts_ns - time.time_ns()) < 60e9
        assert msg.mac is not None
        assert wire.verify(b"s3cret", msg.signed, msg.mac)
        assert msg.tags["target"] == procfs.read_pid_stat(os.getpid()).comm  # type: ignore[union-attr]
        assert int(msg.tags["procs"]) >= 1
        assert int(msg.tags["rss_bytes"]) > 1_000_000
    cpu = [float(m.tags["cpu_s"]) for m in parsed]
    assert cpu == sorted(cpu)
    assert "cpu_pct" not in parsed[0].tags
    assert "cpu_pct" in parsed[1].tags
    assert "host_cpu_pct" in parsed[1].tags
    assert len({m.msg_id for m in parsed}) == len(parsed)


def _drain(sock: socket.socket) -> None:
    sock.settimeout(0.3)
    try:
        while True:
            sock.recv(2048)
    except TimeoutError:
        sock.settimeout(30)


def test_probe_host_match_and_bad_input() -> None:
    with _receiver() as sock:
        port = sock.getsockname()[1]
        out = _probe("--interval", "0.1", "--seconds", "0.15", "--to", f"127.0.0.1:{port}")
        assert out.returncode == 0, out.stderr
        host = parse_message(sock.recv(2048))
        assert host.tags["target"] == "host"
        assert "procs" not in host.tags
        _drain(sock)
        out = _probe("--match", r"pytest|python", "--interval", "0.1", "--seconds", "0.15",
                     "--to", f"127.0.0.1:{port}")
        assert out.returncode == 0, out.stderr
        matched = parse_message(sock.recv(2048))
        assert matched.tags["target"] == "pytest|python"
        assert int(matched.tags["procs"]) >= 1
    gone = _probe("--pid", "999999999", "--seconds", "0.2")
    assert gone.returncode == 2
    assert "no such process" in gone.stderr
    bad = _probe("--match", "(", "--seconds", "0.2")
    assert bad.returncode == 2
    assert "--match" in bad.stderr


def test_probe_pid_that_exits_midway() -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])
    try:
        with _receiver() as sock:
            port = sock.getsockname()[1]
            out = _probe("--pid", str(victim.pid), "--interval", "0.1", "--seconds", "1.5",
                         "--to", f"127.0.0.1:{port}")
            victim.wait(10)
            sock.settimeout(1)
            messages = []
            try:
                while True:
                    messages.append(parse_message(sock.recv(2048)))
            except TimeoutError:
                pass
    finally:
        victim.kill()
        victim.wait()
    assert out.returncode == 0
    assert f"pid {victim.pid} (python" in out.stderr
    assert "exited; its CPU time stays counted" in out.stderr
    cpu = [float(m.tags["cpu_s"]) for m in messages]
    assert cpu == sorted(cpu)
    assert messages[-1].tags["procs"] == "0"
