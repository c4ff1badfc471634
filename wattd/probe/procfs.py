"""Pure parsers of the /proc and cgroup v2 files the probe reads, and the
one-syscall readers. No caching here; see :mod:`wattd.probe.ledger`."""

from __future__ import annotations

import os
from typing import NamedTuple

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcStat(NamedTuple):
    pid: int
    comm: str
    state: str
    ppid: int
    cpu_ticks: int  # utime + stime
    child_ticks: int  # cutime + cstime: children reaped (waited for) so far
    start_ticks: int  # starttime: with pid, identifies the process across pid reuse
    rss_pages: int


def parse_pid_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line; ValueError when it is not one."""
    head, sep, rest = text.rpartition(")")  # comm may hold spaces and parentheses
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    if not sep or len(fields) < 22:
        raise ValueError("not a /proc/<pid>/stat line")
    return ProcStat(pid=int(pid_text), comm=comm, state=fields[0], ppid=int(fields[1]),
                    cpu_ticks=int(fields[11]) + int(fields[12]),
                    child_ticks=int(fields[13]) + int(fields[14]),
                    start_ticks=int(fields[19]), rss_pages=int(fields[21]))


def parse_host_stat(text: str) -> tuple[int, int]:
    """``/proc/stat`` first line -> (busy ticks, total ticks), all cores.
    Busy excludes idle and iowait; guest time is already inside user."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            values += [0] * (8 - len(values))
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            busy = user + nice + system + irq + softirq + steal
            return busy, busy + idle + iowait
    raise ValueError("no 'cpu ' line in /proc/stat")


def parse_cpu_stat(text: str) -> int:
    """cgroup v2 ``cpu.stat`` -> usage_usec."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value)
    raise ValueError("no usage_usec in cpu.stat")


def parse_meminfo_used(text: str) -> int:
    """``/proc/meminfo`` -> MemTotal - MemAvailable, bytes."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            found[key] = int(rest.split()[0]) * 1024
    return found["MemTotal"] - found["MemAvailable"]


def read_text(path: str, limit: int = 65536) -> str:
    """One open/read/close (os-level: no buffered file object per read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


def read_pid_stat(pid: int) -> ProcStat | None:
    """None when the process is gone (or unreadable)."""
    try:
        return parse_pid_stat(read_text(f"/proc/{pid}/stat", 4096))
    except (OSError, ValueError):
        return None


def read_cmdline(pid: int) -> str | None:
    try:
        raw = read_text(f"/proc/{pid}/cmdline", 8192)
    except OSError:
        return None
    return raw.replace("\0", " ").strip()


def list_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]
