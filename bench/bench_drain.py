"""Drain rate of a journal backlog into VictoriaMetrics (v2 sink) and InfluxDB 1.6 (v1 sink).

Builds a journal of N `wattd_power` points (default 1 000 000, in gzip-closed
segments, as after an outage), then, each measurement against a fresh server
started for it, in alternated rounds (``--repeats``, default 5):
- reference: the same pre-formatted lines written from memory in batches of the
  same size, with influxdb-client (VictoriaMetrics) or a plain urllib3 POST to
  /write (InfluxDB 1.6), same gzip setting;
- wattd: a Delivery reading the journal from its start until caught up.
Prints one JSON object: median rates (points/s), the median of the rounds'
ratios wattd/reference (targets: 0.6 against influxdb-client, 0.9 against the
plain POST), each round's ratio and the ratio of the median rates, and the point
counts found in each database afterwards (nothing lost).

    .venv/bin/python bench/bench_drain.py [--points N] [--batch-size B] [--repeats R]
                                          [--no-gzip]
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
from collections.abc import Callable
from pathlib import Path
from statistics import median

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


def rounds(n: int, repeats: int, measure_ref: Callable[[int], tuple[float, int]],
           measure_ours: Callable[[int], tuple[float, int]]) -> dict[str, object]:
    """`repeats` alternated rounds (reference first in even rounds, wattd first in odd
    ones), each measurement on a fresh server: neither side drains into a database
    still busy with the other's points (InfluxDB 1.6 compacts them meanwhile)."""
    ref_s: list[float] = []
    ours_s: list[float] = []
    stored_ref: list[int] = []
    stored_ours: list[int] = []
    for r in range(repeats):
        order = [(measure_ref, ref_s, stored_ref), (measure_ours, ours_s, stored_ours)]
        for measure, times, stored in (order if r % 2 == 0 else order[::-1]):
            elapsed, count = measure(r)
            times.append(elapsed)
            stored.append(count)
    ref, ours = median(ref_s), median(ours_s)
    per_round = [a / b for a, b in zip(ref_s, ours_s, strict=True)]
    # The ratio is the median of the rounds' ratios: each round's two measurements
    # share the machine's state of that moment (the pair is the unit).
    return {"reference_points_per_s": round(n / ref), "wattd_drain_points_per_s": round(n / ours),
            "ratio": round(median(per_round), 3), "ratio_of_medians": round(ref / ours, 3),
            "ratios_per_round": [round(x, 3) for x in per_round],
            "stored_reference": min(stored_ref), "stored_wattd": min(stored_ours)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()
    n, batch, use_gzip = args.points, args.batch_size, not args.no_gzip
    result: dict[str, object] = {"points": n, "batch_size": batch, "gzip": use_gzip,
                                 "repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="wattd-bench-drain-") as tmp:
        tmp_path = Path(tmp)
        ref_lines = make_lines(n, "ref")
        ours_lines = make_lines(n, "wattd")
        t = time.perf_counter()
        journal_bytes = asyncio.run(build_journal(tmp_path / "journal", ours_lines))
        result["journal_build_s"] = round(time.perf_counter() - t, 2)
        result["journal_bytes_on_disk"] = journal_bytes
        result["journal_bytes_uncompressed"] = sum(len(s) + 1 for s in ours_lines)
        del ours_lines

        def v2_ref(r: int) -> tuple[float, int]:
            with VictoriaMetrics(tmp_path / f"vm-ref-{r}") as vm:
                return reference_v2(vm.url, ref_lines, batch, use_gzip), victoria_count(vm, "ref")

        def v2_ours(r: int) -> tuple[float, int]:
            with VictoriaMetrics(tmp_path / f"vm-wattd-{r}") as vm:
                cfg = InfluxConfig(url=vm.url, api="v2", org="wattd", bucket="wattd",
                                   batch_size=batch, gzip=use_gzip, name=f"bench-vm-{r}")
                elapsed = asyncio.run(drain(cfg, tmp_path / "journal"))
                return elapsed, victoria_count(vm, "wattd")

        def v1_ref(r: int) -> tuple[float, int]:
            with InfluxDB1(tmp_path / f"influx-ref-{r}") as influx:
                influx.create_database("ref")
                elapsed = reference_v1(influx.url, "ref", ref_lines, batch, use_gzip)
                return elapsed, influx.count("ref", "wattd_power", "energy_j")

        def v1_ours(r: int) -> tuple[float, int]:
            with InfluxDB1(tmp_path / f"influx-wattd-{r}") as influx:
                influx.create_database("wattd")
                cfg = InfluxConfig(url=influx.url, api="v1", database="wattd",
                                   batch_size=batch, gzip=use_gzip, name=f"bench-influx-{r}")
                elapsed = asyncio.run(drain(cfg, tmp_path / "journal"))
                return elapsed, influx.count("wattd", "wattd_power", "energy_j")

        victoria = rounds(n, args.repeats, v2_ref, v2_ours)
        victoria["reference_influxdb_client_points_per_s"] = victoria.pop("reference_points_per_s")
        result["victoria"] = victoria
        influx_v1 = rounds(n, args.repeats, v1_ref, v1_ours)
        influx_v1["reference_plain_post_points_per_s"] = influx_v1.pop("reference_points_per_s")
        result["influxdb_1_6"] = influx_v1
    result["target_ratio"] = {"victoria": 0.6, "influxdb_1_6": 0.9}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
