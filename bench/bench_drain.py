"""Drain rate of a journal backlog into VictoriaMetrics (v2 sink) and InfluxDB 1.6 (v1 sink).

Builds a journal of N `wattd_power` points (default 1 000 000, in gzip-closed
segments, as after an outage), then, against fresh servers started here:
- reference: the same pre-formatted lines written from memory in batches of the
  same size, with influxdb-client (VictoriaMetrics) or a plain urllib3 POST to
  /write (InfluxDB 1.6), same gzip setting;
- wattd: a Delivery reading the journal from its start until caught up.
Prints one JSON object: rates (points/s), ratio wattd/reference (target >= 0.6),
and the point counts found in each database afterwards (nothing lost).

    .venv/bin/python bench/bench_drain.py [--points N] [--batch-size B] [--no-gzip]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import urllib3

from tests.servers import InfluxDB1, VictoriaMetrics
from wattd.config import InfluxConfig, JournalConfig
from wattd.journal.writer import Journal
from wattd.lineprotocol import format_line
from wattd.sinks import make_sink
from wattd.sinks.base import encode_body
from wattd.sinks.delivery import Delivery

T0_NS = (time.time_ns() // 1_000_000_000 - 86_400) * 1_000_000_000


def make_lines(n: int, meter: str) -> list[str]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        power = rng.uniform(2.0, 15.0)
        fields = {"power_w": round(power, 2), "voltage_v": round(rng.uniform(228, 236), 1),
                  "current_a": round(power / 230.0, 3), "apparent_va": round(power * 1.1, 2),
                  "power_factor": 0.91, "energy_j": round(i * 0.5, 2), "clock_synced": True}
        out.append(format_line("wattd_power", {"meter": meter, "run": "bench", "phase": "load"},
                               fields, T0_NS + i * 1_000_000))
    return out


async def build_journal(directory: Path, lines: list[str]) -> int:
    journal = Journal(JournalConfig(dir=str(directory), max_bytes=8 << 30,
                                    fsync_interval_s=5.0))
    await journal.open()
    for i in range(0, len(lines), 10_000):
        await journal.append(lines[i:i + 10_000])
    await journal.close()  # waits for the gzip of closed segments
    return int(journal.stats()["bytes"])  # type: ignore[call-overload]


def reference_v2(url: str, lines: list[str], batch: int, use_gzip: bool) -> float:
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.domain.write_precision import WritePrecision

    with InfluxDBClient(url=url, token="", org="wattd", enable_gzip=use_gzip) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        start = time.perf_counter()
        for i in range(0, len(lines), batch):
            write_api.write(bucket="wattd", record=lines[i:i + batch],
                            write_precision=WritePrecision.NS)
        return time.perf_counter() - start


def reference_v1(url: str, db: str, lines: list[str], batch: int, use_gzip: bool) -> float:
    pool = urllib3.PoolManager(retries=False)
    target = f"{url}/write?{urllib.parse.urlencode({'db': db, 'precision': 'ns'})}"
    headers = {"Content-Encoding": "gzip"} if use_gzip else {}
    start = time.perf_counter()
    for i in range(0, len(lines), batch):
        body = encode_body([s.encode() for s in lines[i:i + batch]], use_gzip=use_gzip)
        resp = pool.request("POST", target, body=body, headers=headers)
        if resp.status != 204:
            raise RuntimeError(f"reference write failed: {resp.status} {resp.data[:200]!r}")
    return time.perf_counter() - start


async def drain(cfg: InfluxConfig, journal_dir: Path) -> float:
    delivery = Delivery(make_sink(cfg), journal_dir, name=cfg.sink_name,
                        batch_size=cfg.batch_size, flush_interval_s=cfg.flush_interval_s,
                        poll_interval_s=0.05)
    start = time.perf_counter()
    delivery.start()
    while delivery.backlog_bytes() > 0:  # noqa: ASYNC110 (polls a file-backed figure)
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    await delivery.stop()
    if delivery.dropped_points or delivery.retries:
        raise RuntimeError(f"unexpected: {delivery.status()}")
    return elapsed


def victoria_count(server: VictoriaMetrics, meter: str) -> int:
    return sum(len(s["timestamps"]) for s in
               server.export(f'wattd_power_energy_j{{meter="{meter}"}}'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()
    n, batch, use_gzip = args.points, args.batch_size, not args.no_gzip
    result: dict[str, object] = {"points": n, "batch_size": batch, "gzip": use_gzip}
    with tempfile.TemporaryDirectory(prefix="wattd-bench-drain-") as tmp:
        tmp_path = Path(tmp)
        ref_v2_lines = make_lines(n, "ref")
        ref_v1_lines = ref_v2_lines
        ours_lines = make_lines(n, "wattd")
        t = time.perf_counter()
        journal_bytes = asyncio.run(build_journal(tmp_path / "journal", ours_lines))
        result["journal_build_s"] = round(time.perf_counter() - t, 2)
        result["journal_bytes_on_disk"] = journal_bytes
        result["journal_bytes_uncompressed"] = sum(len(s) + 1 for s in ours_lines)
        del ours_lines

        with VictoriaMetrics(tmp_path / "vm") as vm:
            ref_s = reference_v2(vm.url, ref_v2_lines, batch, use_gzip)
            cfg = InfluxConfig(url=vm.url, api="v2", org="wattd", bucket="wattd",
                               batch_size=batch, gzip=use_gzip, name="bench-vm")
            ours_s = asyncio.run(drain(cfg, tmp_path / "journal"))
            result["victoria"] = {
                "reference_influxdb_client_points_per_s": round(n / ref_s),
                "wattd_drain_points_per_s": round(n / ours_s),
                "ratio": round(ref_s / ours_s, 3),
                "stored_reference": victoria_count(vm, "ref"),
                "stored_wattd": victoria_count(vm, "wattd"),
            }
        with InfluxDB1(tmp_path / "influx") as influx:
            influx.create_database("ref")
            influx.create_database("wattd")
            ref_s = reference_v1(influx.url, "ref", ref_v1_lines, batch, use_gzip)
            cfg = InfluxConfig(url=influx.url, api="v1", database="wattd", batch_size=batch,
                               gzip=use_gzip, name="bench-influx")
            ours_s = asyncio.run(drain(cfg, tmp_path / "journal"))
            result["influxdb_1_6"] = {
                "reference_plain_post_points_per_s": round(n / ref_s),
                "wattd_drain_points_per_s": round(n / ours_s),
                "ratio": round(ref_s / ours_s, 3),
                "stored_reference": influx.count("ref", "wattd_power", "energy_j"),
                "stored_wattd": influx.count("wattd", "wattd_power", "energy_j"),
            }
    result["target_ratio"] = 0.6
    print(json.dumps(result))


if __name__ == "__main__":
    main()
