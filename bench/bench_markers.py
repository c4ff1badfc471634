"""Marker round trips on loopback and `wattd mark` start-up cost.

Starts the marker service in-process (fake constant-power readings at 20 Hz,
in-memory journal) on a free loopback port, then measures from a client
thread: ping / start / event round trips (p50, p99; target p99 <= 2 ms), and
the wall time of `wattd mark event` as a subprocess against
`python3 -c pass` in the same run (target ratio <= 3). Byte-code caching is
enabled for the subprocesses (in a temporary PYTHONPYCACHEPREFIX) as in an
installed package. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from wattd.clock.timesource import SYSTEM_CLOCK
from wattd.config import MarkersConfig, RateConfig
from wattd.markers.build import build_markers
from wattd.markers.client import MarkerClient
from wattd.readings import Reading

N_ROUND_TRIPS = 2000
N_PROCESSES = 20


class NullJournal:
    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None:
        return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_side(to: str, out: dict[str, object]) -> None:
    with MarkerClient(to, timeout_s=5.0) as client:
        for verb in ("ping", "start", "event"):
            times = []
            for i in range(N_ROUND_TRIPS):
                name = None if verb == "ping" else "bench" if verb == "event" else f"b{i}"
                t0 = time.perf_counter()
                reply = client.send(verb, name)
                times.append((time.perf_counter() - t0) * 1e3)
                assert reply.ok, reply
                if verb == "start":
                    client.send("abort", name)
            out[verb] = {"p50_ms": round(statistics.median(times), 3),
                         "p99_ms": round(pct(times, 0.99), 3), "n": len(times)}
        client.send("start", "bench")


def startup_ratio(to: str) -> dict[str, object]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="wattd-bench-pyc-")
    mark = [sys.executable, "-m", "wattd", "mark", "event", "bench", "--to", to]
    base = [sys.executable, "-c", "pass"]
    system = ["python3", "-c", "pass"]

    def wall(cmd: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return (time.perf_counter() - t0) * 1e3

    for cmd in (mark, base, system):  # warm caches (and write byte code)
        wall(cmd)
    marks, bases, systems = [], [], []
    for _ in range(N_PROCESSES):
        marks.append(wall(mark))
        bases.append(wall(base))
        systems.append(wall(system))
    m, b, s = statistics.median(marks), statistics.median(bases), statistics.median(systems)
    return {"wattd_mark_ms": round(m, 1), "python_c_pass_ms": round(b, 1),
            "python3_c_pass_ms": round(s, 1), "ratio_vs_same_python": round(m / b, 2),
            "ratio_vs_python3": round(m / s, 2), "target_ratio": 3.0}


async def main() -> dict[str, object]:
    cfg = MarkersConfig(listen=["127.0.0.1:0"], rate=RateConfig(per_s=1e6, burst=1_000_000))
    service, tagger = build_markers(cfg, ["m"], NullJournal(), SYSTEM_CLOCK)
    await service.start()

    async def feed() -> None:
        while True:
            rt, boot = SYSTEM_CLOCK.realtime_ns(), SYSTEM_CLOCK.boottime_ns()
            tagger.push(Reading("m", rt, boot, 42.0))
            tagger.pop_ready(boot)
            await asyncio.sleep(0.05)

    feeder = asyncio.ensure_future(feed())
    host, port = service.addresses[0]
    to = f"{host}:{port}"
    out: dict[str, object] = {}
    await asyncio.to_thread(client_side, to, out)
    out["startup"] = await asyncio.to_thread(startup_ratio, to)
    out["target_p99_ms"] = 2.0
    feeder.cancel()
    await asyncio.gather(feeder, return_exceptions=True)
    await service.stop()
    return out


if __name__ == "__main__":
    from wattd.logsetup import setup_logging

    setup_logging("json", "error")  # stdout carries only the result
    print(json.dumps(asyncio.run(main())))
