"""Delivery from the journal to real databases: InfluxDB 1.6 (v1 /write) and
VictoriaMetrics (v2 API via influxdb-client), with the faults of issue 4.

VictoriaMetrics keeps ms timestamps, keeps 12 significant digits of a float,
stores exact duplicates, drops string fields and answers 204 even for lines it
skipped: assertions on it compare numeric fields at ms resolution (energy_j
values here are exact in 12 digits) and count duplicates explicitly.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.servers import InfluxDB1, VictoriaMetrics, free_port
from wattd.backoff import Backoff
from wattd.config import InfluxConfig, JournalConfig
from wattd.journal.cursor import CursorStore
from wattd.journal.reader import iter_lines
from wattd.journal.segments import list_segments
from wattd.journal.writer import Journal
from wattd.lineprotocol import format_line, parse_line
from wattd.sinks import make_sink
from wattd.sinks.delivery import START, Delivery
from wattd.sinks.status import uncompressed_backlog_bytes

WAIT_S = 60.0
T0_NS = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000  # an hour ago, on a ms


def power_lines(n: int, meter: str, *, start: int = 0, seed: int = 1) -> list[str]:
    """`wattd_power` points 1 ms apart with a sub-ms part (lost on VictoriaMetrics)."""
    rng = random.Random(seed + start)
    out = []
    for i in range(start, start + n):
        fields: dict[str, float | bool] = {
            "power_w": rng.uniform(0.0, 3000.0), "voltage_v": rng.uniform(220.0, 240.0),
            "energy_j": i * 1.5 + 0.25, "clock_synced": i % 2 == 0}
        out.append(format_line("wattd_power", {"meter": meter}, fields,
                               T0_NS + i * 1_000_000 + 123_456))
    return out


async def open_journal(path: Path, **kwargs: Any) -> Journal:
    journal = Journal(JournalConfig(dir=str(path), fsync_interval_s=0.2, **kwargs))
    await journal.open()
    return journal


def v1_cfg(server: InfluxDB1 | str, db: str, **kwargs: Any) -> InfluxConfig:
    url = server if isinstance(server, str) else server.url
    return InfluxConfig(url=url, api="v1", database=db, **kwargs)


def v2_cfg(server: VictoriaMetrics, **kwargs: Any) -> InfluxConfig:
    return InfluxConfig(url=server.url, api="v2", org="wattd", bucket="wattd", **kwargs)


def delivery_for(cfg: InfluxConfig, journal: Journal, **kwargs: Any) -> Delivery:
    kwargs.setdefault("backoff", Backoff(initial_s=0.05, max_s=0.5))
    kwargs.setdefault("poll_interval_s", 0.1)
    return Delivery(make_sink(cfg), journal.dir, cursors=journal.cursors, name=cfg.sink_name,
                    data_event=journal.data_event, batch_size=cfg.batch_size,
                    flush_interval_s=cfg.flush_interval_s, **kwargs)


async def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def drained(delivery: Delivery, journal: Journal) -> None:
    """Wait until the cursor reached the journal's end (everything acknowledged)."""
    await journal.flush()
    await wait_for(lambda: delivery.backlog_bytes() == 0, f"{delivery.name} to drain")


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await open_journal(tmp_path / "journal")
    yield j
    await j.close()


def expected_points(lines: list[str]) -> dict[int, dict[str, Any]]:
    return {p.t_ns: p.fields for p in map(parse_line, lines)}


def influx_points(server: InfluxDB1, db: str, meter: str) -> dict[int, dict[str, Any]]:
    rows = server.rows(db, "wattd_power", f"\"meter\" = '{meter}'")
    return {r["time"]: {k: r[k] for k in ("power_w", "voltage_v", "energy_j", "clock_synced")}
            for r in rows}


def victoria_counts(server: VictoriaMetrics, meter: str, field: str = "energy_j"
                    ) -> Counter[tuple[int, float]]:
    """(t_ms, value) -> how many times VictoriaMetrics stored it."""
    return Counter((t, v) for _, t, v in
                   server.samples(f'wattd_power_{field}{{meter="{meter}"}}'))


def assert_victoria_has(server: VictoriaMetrics, meter: str, lines: list[str], *,
                        max_duplicates: int, context: str = "") -> None:
    expected = {(p.t_ns // 1_000_000, float(p.fields["energy_j"])) for p in map(parse_line, lines)}
    # An acknowledged write can take a moment to become visible to /api/v1/export on
    # a loaded machine even after a forced flush: look again, a bounded number of
    # times, before calling a point missing (a lost point stays missing).
    for _ in range(20):
        counts = victoria_counts(server, meter)
        missing = expected - set(counts)
        if not missing:
            break
        time.sleep(0.5)
    assert not missing, (f"{len(missing)} points missing, e.g. {sorted(missing)[:3]}, "
                         f"{len(counts)} distinct stored; {context}")
    assert set(counts) == expected, "VictoriaMetrics holds points that were never journaled"
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= max_duplicates, f"{duplicates} duplicates > {max_duplicates}"
    power = {t: v for (_, t, v) in server.samples(f'wattd_power_power_w{{meter="{meter}"}}')}
    for p in map(parse_line, lines):
        # VictoriaMetrics keeps 12 significant decimal digits of a float.
        assert power[p.t_ns // 1_000_000] == pytest.approx(p.fields["power_w"], rel=1e-11)


# -- every point arrives, same values and timestamps ------------------------------------------

async def test_v1_delivers_every_point_exactly(influxdb_server: InfluxDB1, influx_db: str,
                                               journal: Journal) -> None:
    lines = power_lines(3000, "m1")
    marker = format_line("wattd_marker", {"run": "r1", "verb": "start", "source": "127.0.0.1"},
                         {"text": 'req=500000 note="a b"', "skew_ms": 0.25}, T0_NS + 5)
    run = format_line("wattd_run", {"run": "r1", "meter": "m1"},
                      {"energy_j": 123.456, "samples": 42, "start_ns": T0_NS, "aborted": False},
                      T0_NS + 10_000_000_000)
    await journal.append(lines[:1500])
    await journal.append([marker, run], durable=True)
    await journal.append(lines[1500:])
    delivery = delivery_for(v1_cfg(influxdb_server, influx_db, batch_size=700), journal)
    delivery.start()
    await drained(delivery, journal)
    await delivery.stop()

    assert influx_points(influxdb_server, influx_db, "m1") == expected_points(lines)
    [marker_row] = influxdb_server.rows(influx_db, "wattd_marker")
    assert marker_row["time"] == T0_NS + 5
    assert marker_row["text"] == 'req=500000 note="a b"'
    assert marker_row["skew_ms"] == 0.25
    [run_row] = influxdb_server.rows(influx_db, "wattd_run")
    assert (run_row["samples"], run_row["start_ns"], run_row["aborted"]) == (42, T0_NS, False)
    status = delivery.status()
    assert status["delivered_points"] == 3002
    assert status["dropped_points"] == 0
    assert status["backlog_bytes"] == 0
    assert CursorStore(journal.dir).load(delivery.name) == journal.end_position()


async def test_v2_delivers_every_point_to_victoria(victoria_server: VictoriaMetrics,
                                                   victoria_label: str, journal: Journal) -> None:
    lines = power_lines(3000, victoria_label)
    for i in range(0, 3000, 250):  # as the daemon does: many small appends
        await journal.append(lines[i:i + 250])
    delivery = delivery_for(v2_cfg(victoria_server, batch_size=1000, flush_interval_s=0.05),
                            journal)
    delivery.start()
    await drained(delivery, journal)
    await delivery.stop()
    assert_victoria_has(victoria_server, victoria_label, lines, max_duplicates=0)
    synced = victoria_counts(victoria_server, victoria_label, "clock_synced")
    assert {(t, v) for (t, v) in synced} == {
        (p.t_ns // 1_000_000, 1.0 if p.fields["clock_synced"] else 0.0)
        for p in map(parse_line, lines)}


async def test_live_appends_are_delivered_after_flush_interval(
        victoria_server: VictoriaMetrics, victoria_label: str, journal: Journal) -> None:
    delivery = delivery_for(v2_cfg(victoria_server, batch_size=5000, flush_interval_s=0.05),
                            journal)
    delivery.start()
    lines = power_lines(50, victoria_label)
    for line in lines:
        await journal.append([line])
    await drained(delivery, journal)
    await delivery.stop()
    assert_victoria_has(victoria_server, victoria_label, lines, max_duplicates=0)


# -- database down ------------------------------------------------------------------------------

async def test_database_down_at_start_is_not_an_error(tmp_path: Path, journal: Journal) -> None:
    server = InfluxDB1(tmp_path / "late")  # configured, not started yet
    try:
        lines = power_lines(500, "late")
        await journal.append(lines)
        delivery = delivery_for(v1_cfg(server, "wattd", batch_size=200), journal)
        delivery.start()
        await wait_for(lambda: delivery.state == "retrying", "retrying state")
        status = delivery.status()
        assert status["last_error"]
        assert status["backlog_bytes"] > 0
        assert status["delivered_points"] == 0
        assert CursorStore(journal.dir).load(delivery.name) == START
        server.start()
        server.create_database("wattd")
        await drained(delivery, journal)
        await delivery.stop()
        assert influx_points(server, "wattd", "late") == expected_points(lines)
        assert delivery.state == "stopped"
    finally:
        server.close()


async def _stream(journal: Journal, meter: str, stop: asyncio.Event, chunk: int = 50
                  ) -> list[str]:
    """A live writer: `chunk` points every 10 ms until `stop`."""
    written: list[str] = []
    while not stop.is_set():
        lines = power_lines(chunk, meter, start=len(written))
        await journal.append(lines)
        written.extend(lines)
        await asyncio.sleep(0.01)
    return written


async def test_influxdb_killed_mid_delivery_loses_nothing(influxdb_server_fn: InfluxDB1,
                                                          journal: Journal) -> None:
    server = influxdb_server_fn
    server.create_database("wattd")
    delivery = delivery_for(v1_cfg(server, "wattd", batch_size=200, flush_interval_s=0.05),
                            journal)
    delivery.start()
    stop = asyncio.Event()
    writer = asyncio.create_task(_stream(journal, "k1", stop))
    await wait_for(lambda: delivery.delivered_points >= 1000, "first deliveries")
    server.kill()  # SIGKILL: influxd fsyncs its WAL before acknowledging
    await wait_for(lambda: delivery.state == "retrying", "retrying state")
    await asyncio.sleep(3.0)  # down for several seconds while points keep coming
    assert delivery.status()["backlog_bytes"] > 0
    server.start()
    await wait_for(lambda: delivery.state == "running", "recovery")
    await asyncio.sleep(0.3)
    stop.set()
    lines = await writer
    await drained(delivery, journal)
    await delivery.stop()
    assert delivery.retries > 0
    assert influx_points(server, "wattd", "k1") == expected_points(lines)


async def test_victoria_stopped_mid_delivery_no_loss_no_duplicates(
        victoria_server_fn: VictoriaMetrics, journal: Journal) -> None:
    server = victoria_server_fn
    batch = 200
    delivery = delivery_for(v2_cfg(server, batch_size=batch, flush_interval_s=0.05), journal)
    delivery.start()
    stop = asyncio.Event()
    writer = asyncio.create_task(_stream(journal, "k2", stop))
    await wait_for(lambda: delivery.delivered_points >= 1000, "first deliveries")
    # SIGTERM, not SIGKILL: VictoriaMetrics itself loses its last ~second of acknowledged
    # samples on SIGKILL (in-memory buffers), which is not ours to prove.
    await asyncio.to_thread(server.stop)
    await wait_for(lambda: delivery.state == "retrying", "retrying state")
    await asyncio.sleep(3.0)
    server.start()
    await wait_for(lambda: delivery.state == "running", "recovery")
    await asyncio.sleep(0.3)
    stop.set()
    lines = await writer
    await drained(delivery, journal)
    await delivery.stop()
    assert_victoria_has(server, "k2", lines, max_duplicates=batch)


# -- delivery process SIGKILLed ------------------------------------------------------------------

def _worker(journal_dir: Path, api: str, url: str, target: str, batch: int,
            pause_s: float = 0.0) -> subprocess.Popen[bytes]:
    worker = Path(__file__).with_name("sink_worker.py")
    return subprocess.Popen([sys.executable, str(worker), str(journal_dir), api, url, target,
                             str(batch), str(pause_s)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_delivery_sigkilled_and_restarted(api: str, tmp_path: Path,
                                                influxdb_server: InfluxDB1,
                                                victoria_server: VictoriaMetrics,
                                                victoria_label: str) -> None:
    batch = 250
    meter = victoria_label
    target = f"k_{victoria_label}"
    journal = await open_journal(tmp_path / "journal", segment_bytes=128 << 10)
    lines = power_lines(24_000, meter)
    for i in range(0, len(lines), 5000):
        await journal.append(lines[i:i + 5000])
    await journal.close()
    assert len(list_segments(journal.dir)) > 3  # crosses gzip segments too
    if api == "v1":
        influxdb_server.create_database(target)
        url = influxdb_server.url
    else:
        url = victoria_server.url
    cursors = CursorStore(journal.dir)

    def caught_up() -> bool:
        cursor = cursors.load("crashtest")
        return cursor is not None and uncompressed_backlog_bytes(journal.dir, cursor) == 0

    kills = 0
    history: list[str] = []
    for _ in range(3):
        # 96 batches, each held 20 ms before it is sent: about 2 s of delivery, so
        # a kill lands mid-delivery even when this test is descheduled a while.
        proc = _worker(journal.dir, api, url, target, batch, pause_s=0.02)
        try:
            # Kill it as soon as it acknowledged at least one more batch.
            before = cursors.load("crashtest")
            await wait_for(lambda b=before: cursors.load("crashtest") not in (None, START, b),
                           "worker progress")
            if caught_up():
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            kills += 1
            history.append(f"killed at {cursors.load('crashtest')}")
        finally:
            _stop_worker(proc)
    assert kills >= 1
    proc = _worker(journal.dir, api, url, target, batch)
    try:
        await wait_for(caught_up, "worker to drain")
        proc.terminate()
        # Its graceful stop is bounded at 5 s; a loaded machine adds its interpreter exit.
        assert proc.wait(30) == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        _stop_worker(proc)
        if proc.stderr:
            proc.stderr.close()
    if api == "v1":
        assert influx_points(influxdb_server, target, meter) == expected_points(lines)
    else:
        # Each SIGKILL may resend the one batch that was in flight.
        assert_victoria_has(victoria_server, meter, lines, max_duplicates=kills * batch,
                            context="; ".join(history))


# -- journal bound while the database is down ---------------------------------------------------

async def test_journal_over_max_bytes_while_database_down(influxdb_server_fn: InfluxDB1,
                                                          tmp_path: Path) -> None:
    server = influxdb_server_fn
    server.create_database("wattd")
    server.stop()
    max_bytes = 256 << 10
    journal = await open_journal(tmp_path / "bounded", max_bytes=max_bytes,
                                 segment_bytes=32 << 10, compress=False)
    try:
        delivery = delivery_for(v1_cfg(server, "wattd", batch_size=300, flush_interval_s=0.05),
                                journal)
        task = delivery.start()
        await wait_for(lambda: journal.cursors.load(delivery.name) is not None, "cursor")
        written: list[str] = []
        for _ in range(60):  # ~1 MB: four times the bound
            lines = power_lines(100, "bound", start=len(written))
            await journal.append(lines)
            written.extend(lines)
            await asyncio.sleep(0)
        assert journal.stats()["undelivered_bytes_dropped"] > 0  # type: ignore[operator]
        assert sum(s.size for s in list_segments(journal.dir)) <= max_bytes
        assert delivery.state == "retrying"
        assert not task.done()
        kept = [line for _, line in iter_lines(journal.dir)]
        assert 0 < len(kept) < len(written)

        server.start()
        await drained(delivery, journal)
        await delivery.stop()
        stored = influx_points(server, "wattd", "bound")
        everything = expected_points(written)
        # Every point still in the journal arrived; the rest is what the bound dropped
        # (a batch read before its segment was deleted may arrive too).
        assert expected_points(kept).items() <= stored.items()
        assert stored.items() <= everything.items()
    finally:
        await journal.close()


# -- refused points are isolated ------------------------------------------------------------------

async def test_type_conflict_lines_isolated_and_counted(influxdb_server: InfluxDB1,
                                                        influx_db: str,
                                                        journal: Journal) -> None:
    seed = format_line("wattd_power", {"meter": "seed"}, {"power_w": 1.0}, T0_NS - 1000)
    assert influxdb_server.write(influx_db, seed)[0] == 204  # power_w is a float now
    lines = power_lines(100, "tc")
    bad = {
        37: format_line("wattd_power", {"meter": "tc"}, {"power_w": 5}, T0_NS + 37_000_000),
        71: format_line("wattd_power", {"meter": "tc"}, {"power_w": "high"}, T0_NS + 71_000_001),
        90: "wattd_power,meter=tc power_w= 12",
    }
    for index, line in bad.items():
        lines[index] = line
    await journal.append(lines)  # one append: one batch of exactly batch_size lines
    delivery = delivery_for(v1_cfg(influxdb_server, influx_db, batch_size=100,
                                   flush_interval_s=5.0), journal)
    delivery.start()
    await drained(delivery, journal)
    await delivery.stop()

    status = delivery.status()
    assert status["dropped_points"] == 3
    assert status["dropped_by_reason"] == {"field_type_conflict": 2, "unable_to_parse": 1}
    assert status["delivered_points"] == 97
    good = [line for i, line in enumerate(lines) if i not in bad]
    assert influx_points(influxdb_server, influx_db, "tc") == expected_points(good)


async def test_refused_batch_in_a_backlog_keeps_the_batches_after_it(
        influxdb_server: InfluxDB1, influx_db: str, journal: Journal) -> None:
    """A backlog's next batch is read while one is on the wire; when that one is
    refused (bisected here), the batch read ahead is read again, not skipped."""
    seed = format_line("wattd_power", {"meter": "seed"}, {"power_w": 1.0}, T0_NS - 1000)
    assert influxdb_server.write(influx_db, seed)[0] == 204  # power_w is a float now
    lines = power_lines(500, "bk")
    lines[37] = format_line("wattd_power", {"meter": "bk"}, {"power_w": 5}, T0_NS + 37_000_000)
    await journal.append(lines)
    delivery = delivery_for(v1_cfg(influxdb_server, influx_db, batch_size=100,
                                   flush_interval_s=5.0), journal)
    delivery.start()
    await drained(delivery, journal)
    await delivery.stop()
    assert delivery.status()["dropped_points"] == 1
    assert delivery.delivered_points == 499
    good = [line for i, line in enumerate(lines) if i != 37]
    assert influx_points(influxdb_server, influx_db, "bk") == expected_points(good)


# -- credentials ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("grant", "first_password", "status_code"), [
    ("WRITE", "wrong", "401"),
    ("READ", "right", "403"),
])
async def test_auth_failure_keeps_data_and_recovers(
        influxdb_auth_server: InfluxDB1, journal: Journal, tmp_path: Path,
        grant: str, first_password: str, status_code: str) -> None:
    server = influxdb_auth_server
    server.create_database("wattd")
    server.query("CREATE USER writer WITH PASSWORD 'right'")
    server.query(f'GRANT {grant} ON "wattd" TO writer')
    password_file = tmp_path / "password"
    password_file.write_text(f"{first_password}\n")
    lines = power_lines(300, "auth")
    await journal.append(lines)
    cfg = v1_cfg(server, "wattd", batch_size=100, username="writer",
                 password_file=str(password_file))
    delivery = delivery_for(cfg, journal, auth_retry_s=0.2)
    delivery.start()
    await wait_for(lambda: delivery.state == "auth_failed", "auth_failed state")
    status = delivery.status()
    assert status_code in status["last_error"]
    assert status["delivered_points"] == 0
    assert CursorStore(journal.dir).load(delivery.name) == START
    # The user fixes the credentials; no restart needed.
    password_file.write_text("right\n")
    server.query('GRANT WRITE ON "wattd" TO writer')
    await drained(delivery, journal)
    await delivery.stop()
    assert influx_points(server, "wattd", "auth") == expected_points(lines)


# -- stopping ------------------------------------------------------------------------------------

async def test_stop_flushes_a_partial_batch(influxdb_server: InfluxDB1, influx_db: str,
                                            journal: Journal) -> None:
    delivery = delivery_for(v1_cfg(influxdb_server, influx_db, batch_size=5000,
                                   flush_interval_s=3600.0), journal)
    delivery.start()
    await wait_for(lambda: delivery.state == "running", "running")
    lines = power_lines(10, "stop")
    await journal.append(lines)
    await delivery.stop(5.0)
    assert influx_points(influxdb_server, influx_db, "stop") == expected_points(lines)
    assert CursorStore(journal.dir).load(delivery.name) == journal.end_position()


async def test_stop_is_bounded_while_database_down(journal: Journal) -> None:
    lines = power_lines(100, "down")
    await journal.append(lines)
    cfg = v1_cfg(f"http://127.0.0.1:{free_port()}", "wattd", batch_size=50)
    delivery = delivery_for(cfg, journal, backoff=Backoff(initial_s=30.0, max_s=60.0))
    delivery.start()
    await wait_for(lambda: delivery.state == "retrying", "retrying state")
    await delivery.stop(1.0)  # returns at once: no waiting out the 30 s backoff
    assert delivery.state == "stopped"
    assert CursorStore(journal.dir).load(delivery.name) == START
    assert [line for _, line in iter_lines(journal.dir)] == lines  # all still journaled


# -- https -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("verify_tls", "use_ca_file", "delivered"), [
    (True, True, True),    # the server's certificate is trusted through ca_file
    (False, False, True),  # verification off (a self-signed box on the LAN)
    (True, False, False),  # unknown issuer: refused, retried, data kept
])
async def test_https(influxdb_tls_server: InfluxDB1, journal: Journal, verify_tls: bool,
                     use_ca_file: bool, delivered: bool) -> None:
    server = influxdb_tls_server
    assert server.url.startswith("https://")
    server.create_database("wattd")
    lines = power_lines(200, "tls")
    await journal.append(lines)
    cfg = v1_cfg(server, "wattd", batch_size=100, verify_tls=verify_tls,
                 ca_file=str(server.cert_path) if use_ca_file else None)
    delivery = delivery_for(cfg, journal)
    delivery.start()
    if delivered:
        await drained(delivery, journal)
        await delivery.stop()
        assert influx_points(server, "wattd", "tls") == expected_points(lines)
    else:
        await wait_for(lambda: delivery.state == "retrying", "retrying state")
        await delivery.stop(1.0)
        assert "SSL" in (delivery.last_error or "") or "certificate" in (delivery.last_error or "")
        assert influx_points(server, "wattd", "tls") == {}
        assert CursorStore(journal.dir).load(delivery.name) == START
