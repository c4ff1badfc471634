"""A sink configured with `delivery: process` delivers from its own process
(wattd.sinks.process / wattd.sinks.child): a real `wattd run`, a real
VictoriaMetrics, real signals to real pids."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fault_scenarios import _stored_when_settled, _v2
from tests.load_rig import (
    DaemonRig,
    delivery_check,
    journal_readings,
    victoria_readings,
    wait_for,
)
from tests.servers import VictoriaMetrics
from wattd.config import InfluxConfig, JournalConfig
from wattd.journal.cursor import CursorStore
from wattd.journal.writer import Journal
from wattd.lineprotocol import format_line
from wattd.sinks.process import DeliveryProcess

T0_NS = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _sink(rig: DaemonRig) -> dict[str, Any]:
    return dict(rig.status()["sinks"]["victoria"])


def _rig(tmp: Path, vm: VictoriaMetrics) -> DaemonRig:
    return DaemonRig(tmp, [{"name": "p", "driver": "simulated", "power_w": 70.0}],
                     simulate=True, influxdb=[{**_v2(vm, 20)[0], "delivery": "process"}])


def test_delivery_runs_in_its_own_process_restarted_when_killed(
        tmp_path: Path, victoria_server_fn: VictoriaMetrics) -> None:
    with _rig(tmp_path / "d", victoria_server_fn) as rig:
        rig.start()
        assert rig.proc is not None
        daemon_pid = rig.proc.pid
        wait_for(lambda: _sink(rig)["delivered_points"] > 0, 30, "a first delivery")
        first = _sink(rig)
        child = int(first["pid"])
        assert child != daemon_pid
        assert _ppid(child) == daemon_pid
        assert b"wattd.sinks.child" in Path(f"/proc/{child}/cmdline").read_bytes()
        assert first["state"] == "running"
        assert first["restarts"] == 0

        os.kill(child, signal.SIGKILL)
        wait_for(lambda: _sink(rig)["restarts"] == 1 and _sink(rig)["pid"] != child, 20,
                 "the delivery process restarted")
        restarted_ms = time.time_ns() // 1_000_000
        after = _sink(rig)
        assert "exited" in str(after["last_error"])
        delivered = after["delivered_points"]

        def fresh_delivered() -> bool:
            """The new process delivers, and readings taken after it started reach the
            database (not only a resend of what the killed one had sent)."""
            stored = victoria_readings(victoria_server_fn).get("p", [0])
            return _sink(rig)["delivered_points"] > delivered and max(stored) > restarted_ms

        wait_for(fresh_delivered, 30, "readings taken after the restart, delivered")
        second = int(_sink(rig)["pid"])
        assert rig.stop() == 0
    assert _gone(second)
    journal = journal_readings(rig.journal_dir)
    check = delivery_check(journal, _stored_when_settled(victoria_server_fn,
                                                         sum(map(len, journal.values())),
                                                         journal=journal))
    assert check["missing"] == 0, check


def test_delivery_process_dies_with_a_killed_daemon(tmp_path: Path,
                                                    victoria_server_fn: VictoriaMetrics) -> None:
    rig = _rig(tmp_path / "d", victoria_server_fn)
    with rig:
        rig.start()
        wait_for(lambda: _sink(rig)["pid"] is not None, 30, "the delivery process")
        child = int(_sink(rig)["pid"])
        rig.kill()  # SIGKILL: no shutdown code runs in the daemon
        wait_for(lambda: _gone(child), 10, "the orphaned delivery process to die")
        # Restarted on the same journal: the new process takes over the cursor.
        rig.start()
        wait_for(lambda: _sink(rig)["delivered_points"] > 0, 30, "delivery after restart")
        assert rig.stop() == 0


async def test_a_second_delivery_on_one_cursor_waits_for_the_lock(
        tmp_path: Path, victoria_server_fn: VictoriaMetrics) -> None:
    journal = Journal(JournalConfig(dir=str(tmp_path / "j"), fsync_interval_s=0.2))
    await journal.open()
    cfg = InfluxConfig(url=victoria_server_fn.url, api="v2", org="o", bucket="b", name="locked",
                       flush_interval_s=0.1)
    lines = [format_line("wattd_power", {"meter": "lk"}, {"power_w": float(i)},
                         T0_NS + i * 1_000_000) for i in range(50)]
    await journal.append(lines)
    cursors = CursorStore(journal.dir)
    cursors.dir.mkdir(parents=True, exist_ok=True)
    holder = os.open(cursors.dir / "locked.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another delivery of this cursor is running
    delivery = DeliveryProcess(cfg, journal.dir)
    journal.append_listeners.append(delivery.wake)
    task = asyncio.ensure_future(delivery.run())
    try:
        await asyncio.sleep(2.5)
        assert delivery.pid is not None
        assert delivery.delivered_points == 0
        assert cursors.load("locked") is None
        os.close(holder)  # the other one is gone: this one takes over
        deadline = time.monotonic() + 30
        while delivery.backlog_bytes() != 0 or cursors.load("locked") is None:
            assert time.monotonic() < deadline, delivery.status()
            await asyncio.sleep(0.1)
        assert delivery.delivered_points == 50
        pid = delivery.pid
    finally:
        await delivery.stop(2.0)
        await task
        await journal.close()
    assert _gone(pid)
    stored = _stored_when_settled(victoria_server_fn, 50)
    assert sum(len(v) for k, v in stored.items() if k == "lk") == 50


async def test_a_delivery_process_that_cannot_start_is_retried_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    delivery = DeliveryProcess(InfluxConfig(url="http://127.0.0.1:9", api="v1", database="x"),
                               tmp_path / "journal")
    task = asyncio.ensure_future(delivery.run())
    deadline = time.monotonic() + 10
    while delivery.restarts < 1:
        assert time.monotonic() < deadline, delivery.status()
        assert not task.done()
        await asyncio.sleep(0.05)
    status = delivery.status()
    assert status["state"] == "restarting"
    assert "not started" in str(status["last_error"])
    await delivery.stop(0.5)
    await asyncio.wait_for(task, 5)
    assert delivery.state == "stopped"
