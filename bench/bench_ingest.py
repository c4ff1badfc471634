"""End-to-end ingest ceiling: simulated meters fed unpaced through decode, run tagging,
the journal and delivery to VictoriaMetrics.

Each meter's GB202 (HLW8032) frames are made beforehand by the chip simulator;
then they are fed, one frame per decoder call, as fast as the event loop takes
them, through the serial source's dispatch (decode -> Reading, SPEC 7 stamp),
the daemon's Pipeline with the marker RunEngine as its stage (a run is open, so
every reading is tagged), the Journal, and the daemon's v2 delivery process
(wattd.sinks.process, as `wattd run` starts it for `delivery: process`, the
setting for such rates) into a VictoriaMetrics started
here. The clock of the readings is in the past (by the span of their stamps and
a minute), so the engine's hold-back releases them at
once (what is measured is throughput).

Prints one JSON object: readings/s fed, journaled and delivered (reported, no
longer a target: a real daemon reads a few meters at ~10 readings/s each) and
the count found in VictoriaMetrics afterwards (nothing lost: still a target).

    .venv/bin/python bench/bench_ingest.py [--meters 4] [--readings 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import VictoriaMetrics
from wattd.clock.timesource import SYSTEM_CLOCK
from wattd.config import InfluxConfig, JournalConfig
from wattd.daemon.pipeline import Pipeline
from wattd.journal.cursor import CursorStore
from wattd.journal.writer import Journal
from wattd.markers.engine import RunEngine
from wattd.markers.events import SourceAddress
from wattd.markers.protocol import MarkerMessage
from wattd.markers.tagger import RunTagger
from wattd.protocols.registry import get_driver
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.power_profile import ConstantPower
from wattd.sinks.process import DeliveryProcess
from wattd.sinks.status import uncompressed_backlog_bytes
from wattd.sources.serial_source import SerialSource

FRAMES_PER_YIELD = 500


def make_frames(n: int, power_w: float, seed: int) -> list[bytes]:
    chip = ChipModel(ConstantPower(power_w), kv=1.88, ki=1.0, seed=seed)
    return [chip.frame_at(i * 0.05) for i in range(n)]


async def wait_until(predicate: object, timeout_s: float = 600.0,
                     poll_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(poll_s)


async def run(vm: VictoriaMetrics, tmp: Path, meters: int, per_meter: int) -> dict[str, object]:
    names = [f"bench{i}" for i in range(meters)]
    frames = {name: make_frames(per_meter + 1, 50.0 + 10 * i, i) for i, name in enumerate(names)}
    total = meters * per_meter

    journal = Journal(JournalConfig(dir=str(tmp / "journal"), max_bytes=8 << 30))
    await journal.open()
    engine = RunEngine(names)
    pipeline = Pipeline(journal, SYSTEM_CLOCK, [RunTagger(engine)])
    # Stamps 1 ms apart, all in the past (the hold-back releases them at once),
    # but after boot: the engine keeps run boundaries after the boot moment.
    t0_ns = SYSTEM_CLOCK.realtime_ns() - (per_meter + 1) * 1_000_000 - 60_000_000_000
    offset_ns = SYSTEM_CLOCK.boottime_ns() - SYSTEM_CLOCK.realtime_ns()
    engine.handle(MarkerMessage(verb="start", name="ingest-bench", tags={"lang": "py"}),
                  SourceAddress("127.0.0.1", 0), t0_ns - 1_000_000_000,
                  t0_ns - 1_000_000_000 + offset_ns)
    spec = get_driver("gb202")
    sources = [SerialSource(name, "/dev/null", spec, spec.make_decoder(),
                            on_reading=pipeline.on_reading, clock=SYSTEM_CLOCK)
               for name in names]
    delivery = DeliveryProcess(InfluxConfig(url=vm.url, api="v2", org="wattd", bucket="wattd",
                                            batch_size=5000, flush_interval_s=0.2),
                               journal.dir)
    journal.append_listeners.append(delivery.wake)
    writer = asyncio.create_task(pipeline.run())
    delivering = asyncio.create_task(delivery.run())
    cursors = CursorStore(journal.dir)

    def acknowledged() -> bool:  # the cursor file is the database's acknowledgement
        pos = cursors.load(delivery.name)
        return pos is not None and uncompressed_backlog_bytes(journal.dir, pos) == 0

    await wait_until(lambda: delivery.pid is not None and delivery.state == "running")
    await asyncio.sleep(1.0)  # the delivery process imports influxdb-client
    child_pid = delivery.pid

    cpu0 = _cpu(), time.thread_time(), _cpu(vm.pid), _cpu(child_pid)
    start = time.perf_counter()
    for i in range(per_meter + 1):  # frame 0 only primes the decoder's energy counter
        t_ns = t0_ns + i * 1_000_000
        for source in sources:
            source.feed(frames[source.name][i], t_ns, t_ns + offset_ns)
        if i % FRAMES_PER_YIELD == 0:
            await asyncio.sleep(0)
    fed_s = time.perf_counter() - start
    readings = sum(s.readings for s in sources)
    await wait_until(lambda: pipeline.readings_written >= readings)
    journaled_s = time.perf_counter() - start
    await journal.flush()
    await wait_until(acknowledged, poll_s=0.002)
    delivered_s = time.perf_counter() - start
    cpu_s, main_s, vm_s = _cpu() - cpu0[0], time.thread_time() - cpu0[1], _cpu(vm.pid) - cpu0[2]
    child_s = _cpu(child_pid) - cpu0[3]

    writer.cancel()
    await delivery.stop()
    await delivering
    await pipeline.drain()
    await journal.close()
    stored = sum(len(s["timestamps"]) for s in vm.export('wattd_power_power_w{run="ingest-bench"}'))
    return {
        "meters": meters, "frames_fed": total, "readings_decoded": readings,
        "readings_journaled": pipeline.readings_written,
        "fed_per_s": round(readings / fed_s), "journaled_per_s": round(readings / journaled_s),
        "delivered_per_s": round(readings / delivered_s),
        "stored_in_victoria_tagged": stored, "lost": readings - stored,
        "dropped_by_sink": delivery.dropped_points,
        "elapsed_s": round(delivered_s, 2),
        # CPU figures hold on a loaded machine where the rates above do not: the
        # event-loop thread's time per reading bounds the rate with a free core.
        "cpu_us_per_reading": {"process": round(cpu_s / readings * 1e6, 2),
                               "event_loop_thread": round(main_s / readings * 1e6, 2),
                               "delivery_process": round(child_s / readings * 1e6, 2),
                               "victoria_metrics": round(vm_s / readings * 1e6, 2)},
        "event_loop_ceiling_per_s": round(readings / main_s),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _cpu(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all threads) or of ``pid``."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=4)
    parser.add_argument("--readings", type=int, default=100_000, help="per meter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wattd-bench-ingest-") as tmp, \
            VictoriaMetrics(Path(tmp) / "vm") as vm:
        result = asyncio.run(run(vm, Path(tmp), args.meters, args.readings))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
