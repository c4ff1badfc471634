"""Three simulated meters (BL0942, GB202, BL0940) in one in-process daemon, markers over
real loopback UDP; one meter is unplugged mid-run and replugged: the others never stall,
each keeps its own tags, and the run's stop reply carries per-meter energy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ports import free_port
from wattd.config import load_config
from wattd.daemon.app import Daemon
from wattd.journal.reader import iter_lines
from wattd.lineprotocol import parse_line
from wattd.markers.client import NoReplyError, send_marker
from wattd.readings import Reading

POWERS = {"a": 40.0, "b": 100.0, "c": 25.0}




async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the daemon runs in other tasks
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout_s)


async def test_three_meters_one_unplugged_mid_run(tmp_path: Path) -> None:
    port = free_port("udp")
    to = f"127.0.0.1:{port}"
    config = tmp_path / "config.yaml"
    config.write_text(
        "meters:\n"
        f"  - {{name: a, driver: bl0942, port: {tmp_path}/none-a, address: 1,"
        f" poll_interval_s: 0.1, power_w: {POWERS['a']}, tags: {{desk: north}}}}\n"
        f"  - {{name: b, driver: gb202, port: {tmp_path}/none-b, power_w: {POWERS['b']},"
        " tags: {desk: south}}\n"
        f"  - {{name: c, driver: bl0940, port: {tmp_path}/none-c, poll_interval_s: 0.1,"
        f" power_w: {POWERS['c']}}}\n"
        f"markers:\n  listen: ['127.0.0.1:{port}']\n  stop_wait_s: 2\n"
        f"journal:\n  dir: {tmp_path / 'journal'}\n"
        "log:\n  format: json\n  level: warning\n")
    daemon = Daemon(load_config(config), simulate=True)
    seen: dict[str, list[Reading]] = {name: [] for name in POWERS}
    forward = daemon.pipeline.on_reading

    def spy(reading: Reading) -> None:
        seen[reading.meter].append(reading)
        forward(reading)

    # every source was built with the pipeline's callback; wrap it before they start
    daemon.meters.on_reading = spy
    task = asyncio.create_task(daemon.run())

    async def mark(verb: str, name: str) -> str:
        for _ in range(3):
            try:
                reply = await asyncio.to_thread(send_marker, verb, name, to=to, timeout_s=8)
            except NoReplyError:
                await asyncio.sleep(0.2)
                continue
            return str(reply) if not reply.ok else " ".join(
                [reply.verb or "", reply.name or ""]
                + [f"{k}={v}" for k, v in reply.fields.items()])
        raise AssertionError("no reply from the daemon")

    try:
        await wait_for(lambda: all(len(r) >= 3 for r in seen.values()))
        assert (await mark("start", "three")).startswith("start three")
        await asyncio.sleep(1.0)
        server = daemon.meters.simulators["b"]
        server.unplug()
        counts = {name: len(r) for name, r in seen.items()}
        unplugged_at = asyncio.get_running_loop().time()
        # The others never stall: they go on while b is out (polled, not a fixed
        # window, so a loaded machine's slow loop does not count as a stall).
        await wait_for(lambda: len(seen["a"]) >= counts["a"] + 5
                       and len(seen["c"]) >= counts["c"] + 5)
        await asyncio.sleep(max(0.0, 1.5 - (asyncio.get_running_loop().time() - unplugged_at)))
        assert len(seen["a"]) >= counts["a"] + 5
        assert len(seen["c"]) >= counts["c"] + 5
        assert len(seen["b"]) <= counts["b"] + 1  # at most a frame already in flight
        server.replug()
        await wait_for(lambda: len(seen["b"]) >= counts["b"] + 5)
        status = daemon.status()["meters"]
        assert status["b"]["reconnects"] >= 1
        assert status["a"]["frames_ok"] > 0
        assert status["c"]["frames_ok"] > 0
        stop = await mark("stop", "three")
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
    assert stop.startswith("stop three"), stop
    fields = dict(item.split("=", 1) for item in stop.split()[2:])
    duration = float(fields["duration_s"])
    for name, watts in POWERS.items():
        # b's gap is bridged by interpolation between constant 100 W readings
        assert float(fields[f"energy_j.{name}"]) == pytest.approx(watts * duration, rel=0.03)
    assert all(r.power_w == pytest.approx(POWERS["a"], rel=0.01) for r in seen["a"])
    tags: dict[str, set[str]] = {name: set() for name in POWERS}
    for _, line in iter_lines(tmp_path / "journal"):
        if line.startswith("wattd_power,"):
            point = parse_line(line)
            tags[point.tags["meter"]].add(point.tags.get("desk", "-"))
    assert tags == {"a": {"north"}, "b": {"south"}, "c": {"-"}}
