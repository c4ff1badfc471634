"""The marker service on real UDP loopback sockets, in-process, fed by a fake
reading stream (constant power, 20 Hz) and writing to an in-memory journal."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from wattd.clock.timesource import SYSTEM_CLOCK
from wattd.config import MarkersConfig
from wattd.energy import NS
from wattd.errors import ConfigError
from wattd.lineprotocol import parse_line
from wattd.markers import wire
from wattd.markers.build import build_markers
from wattd.markers.client import MarkerClient, send_marker
from wattd.markers.server import MarkerService
from wattd.markers.tagger import RunTagger
from wattd.readings import Reading

POWER_W = 42.0
SECRET = b"top secret"


class MemoryJournal:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.durable_calls = 0

    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None:
        self.lines.extend(lines)
        self.durable_calls += int(durable)

    def points(self, measurement: str) -> list[object]:
        return [p for p in map(parse_line, self.lines) if p.measurement == measurement]


async def _feed(tagger: RunTagger, period_s: float = 0.05) -> None:
    """Constant power readings, stamped now, pushed as a source would."""
    counter = 0.0
    last_boot: int | None = None
    while True:
        now_rt, now_boot = SYSTEM_CLOCK.realtime_ns(), SYSTEM_CLOCK.boottime_ns()
        if last_boot is not None:  # a hardware counter integrating the true power
            counter += POWER_W * (now_boot - last_boot) / NS
        last_boot = now_boot
        tagger.push(Reading("m", now_rt, now_boot, POWER_W, energy_j=counter))
        tagger.pop_ready(now_boot)
        await asyncio.sleep(period_s)


class Harness:
    def __init__(self, service: MarkerService, tagger: RunTagger,
                 journal: MemoryJournal) -> None:
        self.service = service
        self.tagger = tagger
        self.journal = journal
        host, port = service.addresses[0]
        self.to = f"{host}:{port}"


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kwargs = getattr(request, "param", {})
    if kwargs.get("secret"):
        secret_file = tmp_path / "secret"
        secret_file.write_text(SECRET.decode() + "\n")
        kwargs = {**kwargs, "secret_file": str(secret_file)}
        kwargs.pop("secret")
    cfg = MarkersConfig(listen=["127.0.0.1:0"], **kwargs)
    journal = MemoryJournal()
    service, tagger = build_markers(cfg, ["m"], journal, SYSTEM_CLOCK)
    await service.start()
    feeder = asyncio.ensure_future(_feed(tagger))
    try:
        yield Harness(service, tagger, journal)
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        await service.stop()


async def mark(h: Harness, verb: str, name: str | None = None, **kw: object) -> wire.Reply:
    return await asyncio.to_thread(send_marker, verb, name, to=h.to, timeout_s=10.0, **kw)


def raw_exchange(to: str, data: bytes, timeout_s: float = 5.0,
                 bind: str | None = None) -> bytes | None:
    host, port = to.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if bind:
            sock.bind((bind, 0))
        sock.settimeout(timeout_s)
        sock.sendto(data, (host, int(port)))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


async def raw(h: Harness, data: bytes, timeout_s: float = 5.0) -> bytes | None:
    return await asyncio.to_thread(raw_exchange, h.to, data, timeout_s)


async def test_constant_power_run(harness: Harness) -> None:
    assert (await mark(harness, "ping")).ok
    start = await mark(harness, "start", "const", tags={"lang": "py"})
    assert start.ok
    await asyncio.sleep(1.0)
    stop = await mark(harness, "stop", "const")
    assert stop.ok, stop
    duration = stop.number("duration_s")
    assert abs(stop.number("energy_j") - POWER_W * duration) <= 0.005 * POWER_W * duration
    assert abs(stop.number("counter_energy_j") - POWER_W * duration) <= 0.01 * POWER_W * duration
    assert stop.number("samples") >= 10
    (run,) = harness.journal.points("wattd_run")
    assert run.tags == {"run": "const", "meter": "m", "lang": "py"}
    markers = harness.journal.points("wattd_marker")
    assert [p.tags["verb"] for p in markers] == ["start", "stop"]
    assert markers[0].tags["source"] == "127.0.0.1"
    assert markers[0].fields["text"] == "lang=py"
    # The readings inside the run are tagged once released from the hold-back.
    await asyncio.sleep(0.6)
    tagged = harness.tagger.pop_ready(SYSTEM_CLOCK.boottime_ns())
    assert all("run" not in r.tags for r in tagged if r.t_ns >= run.t_ns)


async def test_shell_echo_and_garbage(harness: Harness) -> None:
    reply = await raw(harness, b"start echo-run lang=rust\n")
    assert reply == b"ok start echo-run start_ns=" + reply.split(b"start_ns=")[1]
    for junk in (b"", b"\xff\xfe\x00", b"x" * 2000, b"start", b"start a time=1",
                 b"stop never-started"):
        reply = await raw(harness, junk)
        assert reply is not None
        assert reply.startswith(b"error "), reply
    assert (await raw(harness, b"stop never-started")).startswith(b"error unknown")
    assert (await raw(harness, b"start other")).startswith(b"error busy")
    assert (await raw(harness, b"abort echo-run")).startswith(b"ok abort echo-run")
    assert harness.service.counters["syntax"] >= 4
    # Refused messages wrote nothing.
    verbs = [p.tags["verb"] for p in harness.journal.points("wattd_marker")]
    assert verbs == ["start", "abort"]


async def test_retransmission_same_reply_one_effect(harness: Harness) -> None:
    data = wire.format_message("start", "re", msg_id="abc", ts_ns=time.time_ns())
    first = await raw(harness, data)
    second = await raw(harness, data)
    assert first == second
    assert first is not None
    assert first.startswith(b"ok start re")
    assert first.endswith(b"id=abc")
    assert len(harness.journal.points("wattd_marker")) == 1
    stop = wire.format_message("stop", "re", msg_id="def")
    replies = await asyncio.gather(raw(harness, stop), raw(harness, stop))
    assert replies[0] == replies[1]
    assert replies[0] is not None
    assert b"energy_j=" in replies[0]
    assert len(harness.journal.points("wattd_run")) == 1


def _api_session(to: str) -> tuple[object, object]:
    """A benchmark harness using the Python API (runs in a thread: it blocks)."""
    import wattd

    with wattd.run("api-run", to=to, lang="py") as run:
        run.phase("warm")
        time.sleep(0.3)
    with pytest.raises(RuntimeError), wattd.run("api-fail", to=to):
        raise RuntimeError("benchmark crashed")
    return run, wattd.mark("event", "api-run", to=to, note="x y")


async def test_python_api(harness: Harness) -> None:
    run, reply = await asyncio.to_thread(_api_session, harness.to)
    assert run.energy_j is not None
    assert run.energy_j > 0
    assert run.mean_w is not None
    assert abs(run.mean_w - POWER_W) < 0.01 * POWER_W
    aborted = [p for p in harness.journal.points("wattd_run") if p.fields.get("aborted")]
    assert [p.tags["run"] for p in aborted] == ["api-fail"]
    assert reply.ok


@pytest.mark.parametrize("harness", [{"secret": True}], indirect=True)
async def test_auth_good_bad_stale_replayed(harness: Harness) -> None:
    with MarkerClient(harness.to, secret=SECRET, timeout_s=5.0) as client:
        assert (await asyncio.to_thread(client.send, "start", "auth")).ok
    unsigned = await raw(harness, b"start nope\n")
    assert unsigned is not None
    assert unsigned.startswith(b"error auth")
    wrong = wire.format_message("start", "nope", ts_ns=time.time_ns(), msg_id="w",
                                secret=b"wrong")
    assert (await raw(harness, wrong)).startswith(b"error auth")
    stale = wire.format_message("event", "auth", ts_ns=time.time_ns() - 60 * NS, msg_id="s",
                                secret=SECRET)
    assert (await raw(harness, stale)).startswith(b"error stale")
    good = wire.format_message("event", "auth", ts_ns=time.time_ns(), msg_id="e1",
                               secret=SECRET)
    first = await raw(harness, good)
    replayed = await raw(harness, good)
    assert first == replayed
    assert first.startswith(b"ok event auth")
    events = [p for p in harness.journal.points("wattd_marker") if p.tags["verb"] == "event"]
    assert len(events) == 1


async def test_flood_while_legit_marker_is_acknowledged(harness: Harness) -> None:
    host, port = harness.to.rsplit(":", 1)
    # The flood runs alongside the service, in its own process.
    flood = subprocess.Popen([sys.executable, "-c", (  # noqa: ASYNC220
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('127.0.0.2',0))\n"
        "junk=[b'start flood%d' % i for i in range(50)] + [b'\\xff'*1500, b'ping']\n"
        "for i in range(50000):\n"
        "    try: s.sendto(junk[i % len(junk)], (sys.argv[1], int(sys.argv[2])))\n"
        "    except OSError: pass\n"
    ), host, port])
    try:
        await asyncio.sleep(0.2)
        reply = await mark(harness, "event", "legit", tags={"during": "flood"})
        assert reply.ok
    finally:
        await asyncio.to_thread(flood.wait, 60)
    counters = harness.service.counters
    assert counters["rate"] > 0
    assert len(harness.service.rate) <= 2
    assert counters["internal_errors"] == 0
    flood_markers = [p for p in harness.journal.points("wattd_marker")
                     if p.tags["source"] == "127.0.0.2"]
    assert len(flood_markers) <= 1  # only the first start got through: the rest are busy


def test_non_loopback_listen_needs_secret_or_allow(tmp_path: Path) -> None:
    journal = MemoryJournal()
    with pytest.raises(ConfigError, match=r"secret_file or markers\.allow"):
        build_markers(MarkersConfig(listen=["0.0.0.0:9288"]), ["m"], journal, SYSTEM_CLOCK)
    build_markers(MarkersConfig(listen=["0.0.0.0:9288"], allow=["10.0.0.0/8"]), ["m"], journal,
                  SYSTEM_CLOCK)
    build_markers(MarkersConfig(listen=["[::1]:9288", "127.0.0.1:9288"]), ["m"], journal,
                  SYSTEM_CLOCK)


async def test_ipv6_and_allow_list(tmp_path: Path) -> None:
    cfg = MarkersConfig(listen=["[::1]:0", "127.0.0.1:0"], allow=["10.1.0.0/16"])
    service, _ = build_markers(cfg, ["m"], MemoryJournal(), SYSTEM_CLOCK)
    await service.start()
    try:
        (h6, p6), (h4, p4) = service.addresses
        reply = await asyncio.to_thread(send_marker, "ping", to=f"[{h6}]:{p6}", timeout_s=5)
        assert reply.ok  # loopback is always allowed
        silent = await asyncio.to_thread(raw_exchange, f"{h4}:{p4}", b"ping", 0.5, "127.0.0.3")
        assert silent is not None  # 127.0.0.0/8 is loopback too
    finally:
        await service.stop()


async def test_allow_list_refuses_a_sender_outside_it() -> None:
    """Listening on every address with an allow list: a sender outside the list
    (a non-loopback address of this host) gets no reply and changes nothing;
    a sender inside it (loopback) is answered."""
    outside = _non_loopback_ipv4()
    if outside is None:
        pytest.skip("this host has no non-loopback IPv4 address to send from")
    cfg = MarkersConfig(listen=["0.0.0.0:0"], allow=["203.0.113.7/32"])  # not this host
    journal = MemoryJournal()
    service, _ = build_markers(cfg, ["m"], journal, SYSTEM_CLOCK)
    await service.start()
    try:
        port = service.addresses[0][1]
        refused = await asyncio.to_thread(raw_exchange, f"{outside}:{port}",
                                          b"start from-outside", 1.0, outside)
        assert refused is None
        assert service.counters["not_allowed"] == 1
        allowed = await asyncio.to_thread(raw_exchange, f"127.0.0.1:{port}",
                                          b"start from-inside", 5.0, "127.0.0.2")
        assert allowed is not None
        assert allowed.startswith(b"ok start from-inside")
        assert [p.tags["run"] for p in journal.points("wattd_marker")] == ["from-inside"]
    finally:
        await service.stop()


def _non_loopback_ipv4() -> str | None:
    """An IPv4 address of this host outside 127.0.0.0/8, to send from (the
    datagram still never leaves the host: it is addressed to that same address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else str(address)
