"""Fleet scale (SPEC 10): one multicast marker to many daemons, and the report
over many meters and runs from the database.

1. Markers: ``--daemons`` (100) marker services, each the real
   ``MarkerService`` (auth, de-duplication, run engine with one meter) with its
   own multicast endpoint (group socket + its own reply socket) on one
   loopback group, in this process (in-memory journals). The real fan-out
   client (``wattd.markers.fanout.collect``) sends ``start``, ``event`` and
   ``abort`` with ``--expect`` = all of them; per round: the time until every
   reply is in, the sends it took. Reference: the same with one daemon.
2. Report: ``--meters`` x ``--runs`` ``wattd_run`` points (100 x 1000) written
   to a real InfluxDB 1.6 (database) and a real VictoriaMetrics, then
   ``remote_scan`` + ``build_report`` + json render timed from each.
   Reference: the bare HTTP fetch of the same points.

    .venv/bin/python bench/bench_fleet.py [--daemons 100] [--rounds 20]
                                          [--meters 100] [--runs 1000]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ports import free_port
from tests.servers import InfluxDB1, VictoriaMetrics
from wattd.clock.timesource import SYSTEM_CLOCK
from wattd.config import MarkersConfig, MulticastConfig
from wattd.lineprotocol import format_line
from wattd.markers import fanout, wire
from wattd.markers.build import build_markers

S = 1_000_000_000


class NullJournal:
    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None:
        return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------- markers

def client_rounds(group: tuple[str, int], n: int, rounds: int, out: dict[str, Any]) -> None:
    sock = fanout.open_sender(group[0], "127.0.0.1")
    stats: dict[str, tuple[list[float], list[int], list[int]]] = {
        verb: ([], [], []) for verb in ("start", "event", "abort")}
    try:
        for i in range(rounds):
            for verb, (times, sends, answered) in stats.items():
                msg_id = fanout.new_id()
                data = wire.format_message(verb, f"r{i}", ts_ns=time.time_ns(), msg_id=msg_id)
                t0 = time.perf_counter()
                result = fanout.collect(sock, data, msg_id, group,
                                        expect=fanout.Expectation(n), allow=fanout.AllowList([]),
                                        timeout_s=10.0, retries=6)
                times.append((time.perf_counter() - t0) * 1e3)
                sends.append(result.sends)
                answered.append(len(result.ok))
        for verb, (times, sends, answered) in stats.items():
            out[verb] = {"p50_ms": round(statistics.median(times), 2),
                         "p95_ms": round(pct(times, 0.95), 2), "max_ms": round(max(times), 2),
                         "mean_sends": round(statistics.fmean(sends), 2),
                         "min_answered_ok": min(answered), "rounds": rounds}
    finally:
        sock.close()


async def markers(n: int, rounds: int) -> dict[str, Any]:
    group = ("239.192.92.90", free_port("udp"))
    cfg = MarkersConfig(listen=["127.0.0.1:0"], allow=["127.0.0.0/8"],
                        multicast=MulticastConfig(f"{group[0]}:{group[1]}", "127.0.0.1"))
    services = []
    for i in range(n):
        # The service joins cfg.multicast itself (group socket + its own reply socket).
        service, _ = build_markers(cfg, [f"pi{i}"], NullJournal(), SYSTEM_CLOCK)
        await service.start()
        services.append(service)
    out: dict[str, Any] = {"daemons": n}
    try:
        await asyncio.to_thread(client_rounds, group, n, rounds, out)
    finally:
        for service in services:
            await service.stop()
    return out


# ----------------------------------------------------------------------- report

def run_lines(meters: int, runs: int) -> list[str]:
    t0 = 1_700_000_000 * S
    lines = []
    for r in range(runs):
        start = t0 + r * 20 * S
        for m in range(meters):
            energy = 30.0 + m * 0.01 + r * 0.001
            lines.append(format_line(
                "wattd_run", {"run": f"job-{r % 50}-{r // 50}", "meter": f"pi{m:03d}"},
                {"energy_j": energy, "duration_s": 10.0, "mean_w": energy / 10, "min_w": 2.9,
                 "max_w": 3.1, "samples": 100, "start_ns": start}, start + 10 * S))
    return lines


def post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def timed_report(url: str, db: str | None) -> tuple[float, int, int]:
    """`wattd report --influx URL --database DB --format json`, as a user runs it."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wattd", "report", "--influx", url,
                           "--database", db or "", "--format", "json"],
                          capture_output=True, text=True, check=True, timeout=3600)
    seconds = time.perf_counter() - t0
    doc = json.loads(proc.stdout)
    return seconds, len(doc["runs"]), len(doc["totals"])


def fetch_s(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as resp:
        resp.read()
    return time.perf_counter() - t0


def report(meters: int, runs: int) -> dict[str, Any]:
    lines = run_lines(meters, runs)
    out: dict[str, Any] = {"meters": meters, "runs": runs, "points": len(lines)}
    with InfluxDB1() as influx:
        influx.create_database("fleet")
        for i in range(0, len(lines), 10_000):
            post(f"{influx.url}/write?db=fleet&precision=ns",
                 "\n".join(lines[i:i + 10_000]).encode())
        seconds, rows, totals = timed_report(influx.url, "fleet")
        q = urllib.parse.urlencode({"db": "fleet", "q": 'SELECT * FROM "wattd_run"',
                                    "epoch": "ns", "chunked": "true", "chunk_size": "10000"})
        out["influxdb_1_6"] = {"report_s": round(seconds, 2), "rows": rows, "totals": totals,
                               "reference_fetch_s": round(fetch_s(f"{influx.url}/query?{q}"), 2)}
    with VictoriaMetrics() as vm:
        for i in range(0, len(lines), 10_000):
            post(f"{vm.url}/write?db=fleet", "\n".join(lines[i:i + 10_000]).encode())
        vm.flush()
        seconds, rows, totals = timed_report(vm.url, "fleet")
        q = urllib.parse.urlencode({"match[]": '{__name__=~"wattd_run_.*",db="fleet"}',
                                    "start": "0"})
        out["victoria"] = {"report_s": round(seconds, 2), "rows": rows, "totals": totals,
                           "reference_fetch_s": round(fetch_s(f"{vm.url}/api/v1/export?{q}"),
                                                      2)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemons", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--only", choices=("markers", "report"))
    args = parser.parse_args()
    doc: dict[str, Any] = {}
    if args.only in (None, "markers"):
        doc["markers"] = asyncio.run(markers(args.daemons, args.rounds))
        doc["reference_one_daemon"] = asyncio.run(markers(1, args.rounds))
    if args.only in (None, "report"):
        doc["report"] = report(args.meters, args.runs)
    # On paper: what one database must take from a fleet of Pis.
    pis, rate = 750, 10
    doc["paper"] = {"pis": pis, "readings_per_s_each": rate,
                    "wattd_power_points_per_s": pis * rate,
                    "victoria_samples_per_s": pis * rate * 7,  # fields -> series samples
                    "points_per_day": pis * rate * 86_400}
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
