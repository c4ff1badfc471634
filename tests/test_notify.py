"""sd_notify and the watchdog against a real AF_UNIX datagram socket (path and abstract)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattd.daemon.notify import Notifier, parse_notify_socket
from wattd.daemon.watchdog import Watchdog, watchdog_interval_us


class NotifyListener:
    """What systemd does: a bound SOCK_DGRAM socket collecting notifications."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value
        sock.setblocking(False)

    def messages(self) -> list[dict[str, str]]:
        """Every datagram received so far, parsed into assignments."""
        out: list[dict[str, str]] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            out.append(fields)

    async def next_message(self, timeout_s: float = 10.0) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout_s)
        return dict(line.split("=", 1) for line in data.decode().split("\n") if line)


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyListener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = tmp_path / "notify.sock"
        sock.bind(str(path))
        env_value = str(path)
    else:
        name = f"wattd-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        env_value = "@" + name
    try:
        yield NotifyListener(sock, env_value)
    finally:
        sock.close()


def test_parse_notify_socket() -> None:
    assert parse_notify_socket("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_notify_socket("@abc") == b"\0abc"
    for bad in ("relative/path", "@", "vsock:2:1234", "/" + "x" * 200):
        with pytest.raises(ValueError):
            parse_notify_socket(bad)


def test_unset_is_a_noop() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.sent == 0


def test_malformed_socket_warns_and_disables(capsys: pytest.CaptureFixture[str]) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "not-a-socket"})
    assert not notifier.enabled
    assert notifier.ready() is False
    out = capsys.readouterr().out
    assert "notify_socket_malformed" in out
    assert "not-a-socket" in out


def test_ready_status_stopping(listener: NotifyListener) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.env_value})
    assert notifier.enabled
    assert notifier.ready("1 meter\nconnecting")
    assert notifier.status("2 meters ok")
    assert notifier.reloading()
    assert notifier.stopping()
    notifier.close()
    msgs = listener.messages()
    assert msgs[0]["READY"] == "1"
    assert msgs[0]["STATUS"] == "1 meter connecting"  # one line, never two assignments
    assert msgs[1] == {"STATUS": "2 meters ok"}
    assert msgs[2]["RELOADING"] == "1"
    assert int(msgs[2]["MONOTONIC_USEC"]) > 0
    assert msgs[3] == {"STOPPING": "1"}
    assert len(msgs) == 4


def test_socket_gone_is_counted_not_raised(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.send_errors == 2
    assert capsys.readouterr().out.count("notify_send_failed") == 1  # warned once per kind
    notifier.close()


def test_watchdog_env() -> None:
    pid = os.getpid()
    assert watchdog_interval_us({}) is None
    assert watchdog_interval_us({"WATCHDOG_USEC": "30000000"}) == 30_000_000
    assert watchdog_interval_us({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}) \
        == 30_000_000
    # Meant for another process (our parent): not ours.
    assert watchdog_interval_us({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    for bad in ({"WATCHDOG_USEC": "thirty"}, {"WATCHDOG_USEC": "-5"}, {"WATCHDOG_USEC": "0"},
                {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"}):
        assert watchdog_interval_us(bad) is None


def test_watchdog_malformed_warns(capsys: pytest.CaptureFixture[str]) -> None:
    wd = Watchdog.from_env(Notifier(None), {"WATCHDOG_USEC": "soon"})
    assert not wd.enabled
    assert "watchdog_usec_malformed" in capsys.readouterr().out


def test_stalled_heartbeat_withholds_ping_fake_clock(listener: NotifyListener) -> None:
    now = [100.0]
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.env_value})
    wd = Watchdog(notifier, 2_000_000, clock=lambda: now[0])
    fast = wd.register("fast", max_silence_s=1.0)
    slow = wd.register("slow", max_silence_s=1.0)
    assert wd.check()
    now[0] += 0.9
    fast.beat()
    assert wd.check()  # slow: 0.9 s silent, still within 1.0
    now[0] += 0.5
    fast.beat()
    assert not wd.check()  # slow: 1.4 s silent
    assert list(wd.stalled) == ["slow"]
    slow.beat()
    assert wd.check()
    assert wd.stalled == {}
    notifier.close()
    assert listener.messages() == [{"WATCHDOG": "1"}] * 3


async def test_watchdog_pings_then_stops_when_a_task_blocks(listener: NotifyListener) -> None:
    """READY, regular WATCHDOG=1 while tasks progress, none once one task is stuck, STOPPING."""
    env = {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "200000",
           "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier.from_env(env)
    wd = Watchdog.from_env(notifier, env)
    assert wd.enabled
    assert wd.ping_period_s == pytest.approx(0.1)
    block = asyncio.Event()
    released = asyncio.Event()

    async def pipeline_task(name: str, stuck_when_blocked: bool) -> None:
        hb = wd.register(name, max_silence_s=1.0)
        while True:
            hb.beat()
            if stuck_when_blocked and block.is_set():
                await released.wait()  # stuck on purpose: never beats again
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(pipeline_task("reader", False)),
             asyncio.create_task(pipeline_task("writer", True))]
    await asyncio.sleep(0)
    wd_task = asyncio.create_task(wd.run())
    try:
        notifier.ready()
        assert await listener.next_message() == {"READY": "1"}
        for _ in range(3):
            assert await listener.next_message() == {"WATCHDOG": "1"}

        block.set()
        await asyncio.wait_for(wd.stalled_event.wait(), 10)
        assert "writer" in wd.stalled
        listener.messages()  # drain what was sent before the stall was seen
        await asyncio.wait_for(wd.wait_checks(5), 10)
        assert listener.messages() == []  # five check rounds, no ping: systemd would restart us
        assert "writer" in wd.status()["stalled"]

        released.set()  # the task recovers: pings resume
        assert await listener.next_message() == {"WATCHDOG": "1"}
        notifier.stopping()
        msgs = listener.messages()
        assert msgs[-1] == {"STOPPING": "1"}
    finally:
        for task in [*tasks, wd_task]:
            task.cancel()
        await asyncio.gather(*tasks, wd_task, return_exceptions=True)
        notifier.close()


async def test_ended_task_withholds_ping() -> None:
    wd = Watchdog(Notifier(None), 1_000_000)

    async def crash() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(crash())
    wd.register("crasher", task=task)
    await asyncio.gather(task, return_exceptions=True)
    assert not wd.check()
    assert wd.stalled == {"crasher": "ended"}


def test_progress_counter_watch_fake_clock() -> None:
    now = [0.0]
    counter = [0]
    wd = Watchdog(Notifier(None), 4_000_000, clock=lambda: now[0])
    wd.watch("pipeline", lambda: counter[0], max_silence_s=2.0)
    now[0] = 1.5
    assert wd.check()
    counter[0] += 1
    now[0] = 3.0
    assert wd.check()  # the counter moved at the 3.0 s check
    now[0] = 4.9
    assert wd.check()
    now[0] = 5.1
    assert not wd.check()  # unchanged for 2.1 s
    assert "no progress" in wd.stalled["pipeline"]
