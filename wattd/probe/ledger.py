"""Which processes are probed, and their CPU seconds, monotonic across churn.

Membership is decided once per process (a pid seen for the first time): a
descendant of a ``--pid`` root, or a command line matching a ``--match``
regex. Non-members are remembered too, so each interval reads only
``/proc`` (the pid list), the stat of new pids and the stat of members.

CPU accounting: a member counts ``utime + stime + cutime + cstime``. When
a member exits, the CPU it had goes on counting: its parent's ``cutime``
absorbs it when the parent is a live member (it reaps it), otherwise the
last value seen is kept in ``retired_ticks``. The total is also clamped to
never go backwards (a tick lost between the last read and an exit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from wattd.probe import procfs


class _Member:
    __slots__ = ("stat",)

    def __init__(self, stat: procfs.ProcStat) -> None:
        self.stat = stat

    @property
    def ticks(self) -> int:
        return self.stat.cpu_ticks + self.stat.child_ticks


class Reading(NamedTuple):
    cpu_s: float
    rss_bytes: int
    procs: int
    exited: tuple[tuple[int, str], ...]  # (pid, comm) of members that exited since the last read


class ProcessLedger:
    def __init__(self, roots: Iterable[int] = (), matches: Iterable[Callable[[str], bool]] = (),
                 *, list_pids: Callable[[], list[int]] = procfs.list_pids,
                 read_stat: Callable[[int], procfs.ProcStat | None] = procfs.read_pid_stat,
                 read_cmdline: Callable[[int], str | None] = procfs.read_cmdline) -> None:
        self.roots = set(roots)
        self.matches = list(matches)
        self._list_pids = list_pids
        self._read_stat = read_stat
        self._read_cmdline = read_cmdline
        self.members: dict[int, _Member] = {}
        self.tree: set[int] = set()  # members through a --pid root (their children join)
        self.others: set[int] = set()
        self.retired_ticks = 0
        self._last_ticks = 0

    def read(self) -> Reading:
        pids = self._list_pids()
        present = set(pids)
        self.others &= present
        new = [pid for pid in pids if pid not in self.members and pid not in self.others]
        fresh: dict[int, procfs.ProcStat] = {}
        for pid in new:
            stat = self._read_stat(pid)
            if stat is not None:
                fresh[pid] = stat
        self._admit(fresh)
        exited: list[tuple[int, str]] = []
        gone: list[_Member] = []
        for pid, member in list(self.members.items()):
            if pid in fresh:
                continue
            stat = self._read_stat(pid) if pid in present else None
            if stat is None or stat.start_ticks != member.stat.start_ticks:
                gone.append(member)
                del self.members[pid]
                self.tree.discard(pid)
                if member.stat.state != "Z":
                    exited.append((pid, member.stat.comm))
            else:
                if stat.state == "Z" and member.stat.state != "Z":
                    exited.append((pid, member.stat.comm))  # exited, not yet reaped
                member.stat = stat
        for member in gone:
            parent = self.members.get(member.stat.ppid)
            if parent is None:  # nobody in the set reaps it: keep what it had
                self.retired_ticks += member.ticks
        ticks = self.retired_ticks + sum(m.ticks for m in self.members.values())
        ticks = max(ticks, self._last_ticks)
        self._last_ticks = ticks
        live = [m for m in self.members.values() if m.stat.state != "Z"]
        rss = sum(m.stat.rss_pages for m in live) * procfs.PAGE_BYTES
        return Reading(ticks / procfs.CLK_TCK, rss, len(live), tuple(exited))

    def _admit(self, fresh: dict[int, procfs.ProcStat]) -> None:
        undecided = dict(fresh)
        # Parents before children: repeat while a new pid joins through a new parent.
        changed = True
        while changed and undecided:
            changed = False
            for pid, stat in list(undecided.items()):
                if pid in self.roots or stat.ppid in self.tree:
                    self.members[pid] = _Member(stat)
                    self.tree.add(pid)
                    del undecided[pid]
                    changed = True
        for pid, stat in undecided.items():
            if self.matches:
                cmdline = self._read_cmdline(pid)
                if cmdline and any(match(cmdline) for match in self.matches):
                    self.members[pid] = _Member(stat)
                    continue
            self.others.add(pid)
