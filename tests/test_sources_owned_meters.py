"""The SPEC 8 sources against their simulators: real ptys, real files, real loopback HTTP.

Faults (a corrupted or silent chip, a short UM frame, a vanished hwmon file, HTTP
401/500, an answer without the power field, a plug that stops answering) are
counted, logged once per state change, never crash the source and never give
a reading that was not measured.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from wattd.config import MeterConfig, PlausibleRanges
from wattd.daemon.polled_meters import make_polled_source
from wattd.protocols.mcp39f511n import SERIAL as MCP_SERIAL
from wattd.readings import Reading
from wattd.simulator.chip_polled import MCP39F511NChipModel, UMChipModel
from wattd.simulator.hwmon_dir import HwmonSimulator
from wattd.simulator.plug_http import PlugModel, PlugServer
from wattd.simulator.power_profile import ConstantPower
from wattd.simulator.pty_server import PtyMeterServer
from wattd.sources.polled_source import PolledSource
from wattd.sources.reconnect import Reconnector

DC = PlausibleRanges(voltage_v=(0.0, 30.0), current_a=(0.0, 10.0), power_w=(0.0, 300.0))


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state lives in another thread/task
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout_s)


class Running:
    def __init__(self, meter: MeterConfig, **kw: Any) -> None:
        self.readings: list[Reading] = []
        self.source, _ = make_polled_source(meter, on_reading=self.readings.append, **kw)
        self.source.reconnector = Reconnector(meter.name, initial_s=0.05, max_s=0.2,
                                              rng=random.Random(0),
                                              log=structlog.get_logger("wattd.sources"))
        self.task: asyncio.Task[None] | None = None

    def start(self) -> PolledSource:
        self.task = asyncio.create_task(self.source.run())
        return self.source

    async def stop(self) -> None:
        self.source.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for server in started:
        server.stop()


async def test_mcp_on_a_pty_exact_power_energy_counter_and_faults(
        tmp_path: Path, servers: list[Any]) -> None:
    chip = MCP39F511NChipModel(ConstantPower(60.0), channel=2)
    sim = PtyMeterServer(chip, MCP_SERIAL, link_path=tmp_path / "acm").start()
    servers.append(sim)
    meter = MeterConfig(name="mcp", driver="mcp39f511n", port=sim.port_path, channel=2,
                        poll_interval_s=0.05, tags={"lab": "1"})
    run = Running(meter)
    source = run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 8)
        assert all(r.power_w == pytest.approx(60.0) for r in run.readings)
        assert all(r.voltage_v == pytest.approx(230.0) for r in run.readings)
        assert run.readings[-1].tags == {"lab": "1"}
        # The chip's counter is at 0 on the first poll (taken as not accumulating yet),
        # then counts from its first non-zero value.
        energies = [r.energy_j for r in run.readings]
        while energies[0] is None:  # 60 W x 50 ms polls: 3.6 J per count takes 60 ms
            energies.pop(0)
        assert len(energies) >= 5
        assert energies[0] == 0.0
        assert all(e is not None for e in energies)
        assert energies == sorted(energies)  # type: ignore[type-var]
        with capture_logs() as logs:
            chip.corrupt = True
            await wait_for(lambda: source.transport.counters.dropped["checksum"] >= 1)
            count = len(run.readings)
            await wait_for(lambda: len(run.readings) >= count + 3)
            chip.silent = True
            await wait_for(lambda: source.transport.counters.dropped["no_answer"] >= 3)
            silent_count = len(run.readings)
            await asyncio.sleep(0.2)
            assert len(run.readings) == silent_count  # nothing made up while silent
            chip.silent = False
            await wait_for(lambda: len(run.readings) >= silent_count + 3)
        dropped = [e for e in logs if e["event"] == "meter input dropped"]
        assert [e["reason"] for e in dropped] == ["checksum", "no_answer"]  # once per state
        status = source.status()
        assert status["frames_bad"] == sum(source.transport.counters.dropped.values())
        assert status["state"] == "connected"
        assert isinstance(status["last_reading_age_s"], float)
    finally:
        await run.stop()


async def test_um_on_a_pty_short_frame_and_replug(tmp_path: Path, servers: list[Any]) -> None:
    from wattd.protocols.um import SERIAL

    chip = UMChipModel(ConstantPower(3.25), model="UM25C", voltage_v=5.0)
    sim = PtyMeterServer(chip, SERIAL, link_path=tmp_path / "rfcomm0").start()
    servers.append(sim)
    meter = MeterConfig(name="um", driver="um", port=sim.port_path, poll_interval_s=0.2,
                        plausible=DC, timeout_s=0.5)
    run = Running(meter)
    source = run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 3)
        r = run.readings[-1]
        assert (r.power_w, r.voltage_v, r.current_a) == (3.25, 5.0, pytest.approx(0.65))
        chip.corrupt = True  # the next answer stops after 60 bytes
        await wait_for(lambda: source.transport.counters.dropped["short_frame"] == 1)
        count = len(run.readings)
        await wait_for(lambda: len(run.readings) >= count + 2)
        sim.unplug()
        await wait_for(lambda: source.reconnector.state.value in ("lost", "retrying"))
        sim.replug()
        await wait_for(lambda: source.reconnector.reconnects == 1)
        count = len(run.readings)
        await wait_for(lambda: len(run.readings) >= count + 2)
        assert source.status()["model"] == "UM25C"
        assert all(x.power_w == 3.25 for x in run.readings)
    finally:
        await run.stop()


async def test_hwmon_by_sensor_name_without_power_file_and_vanishing_file(
        tmp_path: Path, servers: list[Any]) -> None:
    root = tmp_path / "hwmon"
    (root / "hwmon0").mkdir(parents=True)
    (root / "hwmon0" / "name").write_text("cpu_thermal\n")
    sim = HwmonSimulator(root / "hwmon3", ConstantPower(3.0), voltage_v=5.0,
                         power_file=False).start()
    servers.append(sim)
    meter = MeterConfig(name="ina", driver="hwmon", sensor="ina226", poll_interval_s=0.05,
                        plausible=DC)
    run = Running(meter, hwmon_root=root)
    source = run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 5)
        assert source.status()["port"] == str(root / "hwmon3")
        assert source.status()["power_file"] is False
        assert all(r.power_w == pytest.approx(3.0) for r in run.readings)  # 5.000 V x 0.600 A
        with capture_logs() as logs:
            sim.remove("curr1_input")  # the sensor was unbound
            await wait_for(lambda: source.reconnector.state.value == "retrying")
            count = len(run.readings)
            await asyncio.sleep(0.3)
            assert len(run.readings) == count
            sim.restore()
            await wait_for(lambda: len(run.readings) >= count + 3)
        events = [e["event"] for e in logs]
        assert events.count("meter port lost") == 1
        assert events.count("meter port unavailable, retrying") <= 1
        assert source.reconnector.reconnects == 1
    finally:
        await run.stop()


@pytest.mark.parametrize("gen", [1, 2])
async def test_shelly_auth_faults_and_missing_power(gen: int, tmp_path: Path,
                                                    servers: list[Any]) -> None:
    model = PlugModel("shelly", ConstantPower(47.5), gen=gen, password="s3cret",
                      refresh_s=0.0)
    server = PlugServer(model).start()
    servers.append(server)
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    meter = MeterConfig(name="plug", driver="shelly", url=server.url, poll_interval_s=0.05,
                        password_file=str(secret))
    run = Running(meter)
    source = run.start()
    counters = source.transport.counters
    try:
        await wait_for(lambda: len(run.readings) >= 3)
        assert all(r.power_w == 47.5 for r in run.readings)
        assert source.status()["gen"] == gen
        with capture_logs() as logs:
            for fault, reason in (("status_override", "http_status"),
                                  ("drop_power", "missing_field"), ("garbage", "garbage")):
                setattr(model, fault, 500 if fault == "status_override" else True)
                await wait_for(lambda r=reason: counters.dropped[r] >= 3)  # type: ignore[misc]
                count = len(run.readings)
                await asyncio.sleep(0.15)
                assert len(run.readings) == count, "no reading from a bad answer"
                setattr(model, fault, None if fault == "status_override" else False)
                await wait_for(lambda c=count: len(run.readings) >= c + 2)  # type: ignore[misc]
        dropped = [e["reason"] for e in logs if e["event"] == "meter input dropped"]
        assert dropped == ["http_status", "missing_field", "garbage"]
        assert sum(e["event"] == "meter input recovered" for e in logs) == 3
    finally:
        await run.stop()
    # Without the password: 401, counted as auth, no reading.
    meter = MeterConfig(name="plug", driver="shelly", url=server.url, poll_interval_s=0.05)
    run = Running(meter)
    source = run.start()
    try:
        await wait_for(lambda: source.transport.counters.dropped["auth"] >= 2)
        assert run.readings == []
    finally:
        await run.stop()


async def test_tasmota_credentials_warning_and_plug_gone(tmp_path: Path,
                                                        servers: list[Any]) -> None:
    model = PlugModel("tasmota", ConstantPower(18.0), password="pw", refresh_s=0.0)
    server = PlugServer(model).start()
    servers.append(server)
    secret = tmp_path / "pw"
    secret.write_text("pw")
    good = MeterConfig(name="t", driver="tasmota", url=server.url, poll_interval_s=0.05,
                       password_file=str(secret), timeout_s=0.5)
    run = Running(good)
    source = run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 3)
        assert all(r.power_w == 18.0 for r in run.readings)
        with capture_logs() as logs:
            server.stop()  # the plug is unplugged: a port error, backoff, no readings
            servers.remove(server)
            await wait_for(lambda: source.reconnector.state.value in ("lost", "retrying"))
            count = len(run.readings)
            await wait_for(lambda: source.reconnector.failures >= 4)  # several retry rounds
            assert len(run.readings) == count
        events = [e["event"] for e in logs]
        assert events.count("meter port lost") == 1
        assert events.count("meter port unavailable, retrying") == 1
        assert events.count("meter port connected") == 0  # a lazy TCP open is not a connect
    finally:
        await run.stop()
    server2 = PlugServer(model).start()
    servers.append(server2)
    no_pw = MeterConfig(name="t", driver="tasmota", url=server2.url, poll_interval_s=0.05)
    run = Running(no_pw)
    source = run.start()
    try:
        await wait_for(lambda: source.transport.counters.dropped["auth"] >= 2)
        assert run.readings == []
        assert source.status()["input_state"] == "auth"
    finally:
        await run.stop()


async def test_hwmon_by_path_with_power_file(tmp_path: Path, servers: list[Any]) -> None:
    sim = HwmonSimulator(tmp_path / "hwmon2", ConstantPower(2.75), voltage_v=5.0).start()
    servers.append(sim)
    meter = MeterConfig(name="ina", driver="hwmon", path=str(tmp_path / "hwmon2"),
                        poll_interval_s=0.05, plausible=DC)
    run = Running(meter)
    source = run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 3)
        assert source.status()["power_file"] is True
        assert all(r.power_w == 2.75 for r in run.readings)  # power1_input, in microwatts
        assert all(r.energy_j is None for r in run.readings)  # no counter: none made up
    finally:
        await run.stop()


@pytest.mark.parametrize(("driver", "power_w"), [("um", 4.2), ("mcp39f511n", 75.5)])
async def test_wattd_simulate_serves_the_serial_meters(tmp_path: Path, servers: list[Any],
                                                       driver: str, power_w: float) -> None:
    from wattd.simulator.meter import start_simulated_meter

    sim = start_simulated_meter(driver, power_w=power_w, link_path=tmp_path / "tty")
    servers.append(sim)
    meter = MeterConfig(name="s", driver=driver, port=sim.port_path, poll_interval_s=0.1)
    run = Running(meter)
    run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 3)
        assert all(r.power_w == power_w for r in run.readings)
    finally:
        await run.stop()


class SwitchedClock:
    """A clock that shows ``now_ns`` until the meter (in its thread) moves it on:
    stamps then depend only on the protocol, not on how busy the machine is."""

    OFFSET_NS = 7 * 10**9  # boottime = realtime - OFFSET

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def realtime_ns(self) -> int:
        return self.now_ns

    def boottime_ns(self) -> int:
        return self.now_ns - self.OFFSET_NS


T_SEND = 1_700_000_000 * 10**9


async def test_http_reading_stamped_at_request_answer_midpoint(servers: list[Any]) -> None:
    clock = SwitchedClock(T_SEND)

    class Plug(PlugModel):
        def body(self, path: str) -> tuple[int, bytes]:
            clock.now_ns = T_SEND + 300_000_000  # the answer is complete 300 ms later
            return super().body(path)

    model = Plug("shelly", ConstantPower(10.0), gen=2, refresh_s=0.0)
    server = PlugServer(model).start()
    servers.append(server)
    meter = MeterConfig(name="p", driver="shelly", url=server.url, poll_interval_s=0.5)
    run = Running(meter, clock=clock)
    run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 1)
    finally:
        await run.stop()
    first = run.readings[0]
    assert first.t_ns == T_SEND + 150_000_000
    assert first.t_boot_ns == first.t_ns - SwitchedClock.OFFSET_NS


async def test_serial_reading_stamped_at_send_reply_start_midpoint(
        tmp_path: Path, servers: list[Any]) -> None:
    from wattd.protocols.um import SERIAL

    clock = SwitchedClock(T_SEND)

    class TimedUM(UMChipModel):
        def receive(self, data: bytes, t_s: float) -> list[bytes]:
            clock.now_ns = T_SEND + 300_000_000  # the whole answer is read 300 ms later
            return super().receive(data, t_s)

    chip = TimedUM(ConstantPower(2.0), model="UM24C", voltage_v=5.0)
    sim = PtyMeterServer(chip, SERIAL, link_path=tmp_path / "tty", chunk_bytes=130).start()
    servers.append(sim)
    meter = MeterConfig(name="u", driver="um", port=sim.port_path, poll_interval_s=0.5)
    run = Running(meter, clock=clock)
    run.start()
    try:
        await wait_for(lambda: len(run.readings) >= 1)
    finally:
        await run.stop()
    # Midpoint of the send and the reply's arrival less its wire time (130 bytes x 10 bits
    # at 9600 baud = 135.416 ms): an arrival stamp would be 300 ms, a plain midpoint 150.
    wire_ns = 130 * 10 * 10**9 // 9600
    assert run.readings[0].t_ns == T_SEND + (300_000_000 - wire_ns) // 2
