"""CPU share and peak RSS of `wattd run` with one simulated meter at the chip's real rate.

Simulated GB202s run in a feeder process of their own, so only the daemon is
measured: one pty per reader, each fed the same frames at the chip's frame
rate, as whole frames (`--feed whole`, the default: the frame arrives at once,
as from a USB adapter that buffers it) or paced at the wire rate in 4-byte
chunks (`--feed paced`, as `wattd simulate` does). References, in the same
run, each on its own identical pty: the Python floor, a bare asyncio
loop with `add_reader` and `os.read` (what any asyncio reader of those bytes
costs; target: daemon <= 1.5x it), and `cat PORT > /dev/null` (the least any
reader can cost); also an idle Python interpreter, and a skeleton of the
daemon's least work (the floor's reader with VMIN, the real decoder, a journal
line per reading appended every 0.3 s, an fsync a second: see SKELETON).
Targets: daemon <= 0.5 % of one core and <= 1.5x the floor, peak RSS <= 60 MB.

    python bench/bench_daemon_cpu.py [--seconds 60] [--feed whole|paced] [--sink v1]

``--sink v1``: the daemon also delivers to a real InfluxDB 1.6 (started here as
tests/servers.py does; its own CPU is not counted), with the default delivery:
what a user who configures a database gets.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``: the scheduler's nanosecond run time
    (/proc/PID/schedstat) where the kernel has it, else utime + stime in clock
    ticks (10 ms: too coarse for a process that uses 0.1 % of a core)."""
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total_ns += int((task / "schedstat").read_text().split()[0])
        return total_ns / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# The Python floor: a bare asyncio loop reading the pty as the daemon does
# (raw mode, non-blocking fd in add_reader, os.read), doing nothing with the bytes.
FLOOR = """
import asyncio, os, sys, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
tty.setraw(fd)
def readable():
    try:
        os.read(fd, 4096)
    except BlockingIOError:
        pass
async def main():
    asyncio.get_running_loop().add_reader(fd, readable)
    await asyncio.Event().wait()
asyncio.run(main())
"""


# What the daemon's work needs at least, in the same style: the floor's reader
# with VMIN = frame size (one wake-up per frame, as the daemon), the real decoder,
# a Reading and its journal line per frame, the lines appended from the loop every
# 0.3 s and fsynced once a second in a worker thread (SPEC 4's cadence). No marker
# engine, hold-back, clock health, status or logging.
SKELETON = """
import asyncio, os, sys, termios, time, tty
from wattd.protocols.registry import get_driver
from wattd.readings import Reading
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
tty.setraw(fd)
attrs = termios.tcgetattr(fd)
attrs[6][termios.VMIN] = get_driver("gb202").frame_bytes
attrs[6][termios.VTIME] = 0
termios.tcsetattr(fd, termios.TCSANOW, attrs)
out = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
decoder = get_driver("gb202").make_decoder()
lines = []
last_sync = time.monotonic()
def readable():
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        return
    real_ns, boot_ns = time.time_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    for m in decoder.feed(data, real_ns):
        if hasattr(m, "power_w"):
            lines.append(Reading("pi", m.t_ns, boot_ns, m.power_w, m.voltage_v, m.current_a,
                                 m.apparent_va, m.power_factor, m.energy_j, m.status, True,
                                 {}).to_line())
def cycle():
    global last_sync
    loop = asyncio.get_running_loop()
    if lines:
        os.write(out, ("\\n".join(lines) + "\\n").encode())
        lines.clear()
    if time.monotonic() - last_sync >= 1.0:
        last_sync = time.monotonic()
        loop.run_in_executor(None, os.fsync, out)
    loop.call_later(0.3, cycle)
async def main():
    asyncio.get_running_loop().add_reader(fd, readable)
    asyncio.get_running_loop().call_later(0.3, cycle)
    await asyncio.Event().wait()
asyncio.run(main())
"""


# Identical simulated meters (same chip model, same seed) on one pty each.
FEEDER = """
import signal, sys, time
from wattd.protocols.registry import get_driver
from wattd.simulator.chip_hlw8032 import FRAME_INTERVAL_S
from wattd.simulator.meter import make_chip
from wattd.simulator.pty_server import PtyMeterServer
chunk, links = int(sys.argv[1]), sys.argv[2:]
serial = get_driver("gb202").serial
servers = [PtyMeterServer(make_chip("gb202", power_w=3.5, seed=1), serial, link_path=link,
                          frame_interval_s=FRAME_INTERVAL_S, chunk_bytes=chunk).start()
           for link in links]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while True:
        time.sleep(3600)
finally:
    for server in servers:
        server.stop()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--feed", choices=("whole", "paced"), default="whole")
    parser.add_argument("--sink", choices=("none", "v1"), default="none")
    args = parser.parse_args()
    server = None
    if args.sink == "v1":
        sys.path.insert(0, str(ROOT))
        from tests.servers import InfluxDB1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        link = tmp / "ttySIM"
        link2 = tmp / "ttySIM2"
        link3 = tmp / "ttySIM3"
        link4 = tmp / "ttySIM4"
        feeder = subprocess.Popen([sys.executable, "-c", FEEDER,
                                   "1000" if args.feed == "whole" else "4",
                                   str(link), str(link2), str(link3), str(link4)])
        procs = [feeder]
        try:
            sink_cfg = ""
            if args.sink == "v1":
                server = InfluxDB1(tmp / "influx")
                server.start()
                server.create_database("wattd")
                sink_cfg = f"influxdb: [{{url: '{server.url}', api: v1, database: wattd}}]\n"
            for _ in range(100):
                if all(p.exists() for p in (link, link2, link3, link4)):
                    break
                time.sleep(0.05)
            cfg = tmp / "wattd.yaml"
            cfg.write_text(f"meters: [{{name: pi, driver: gb202, port: {link}}}]\n"
                           f"journal: {{dir: {tmp / 'journal'}}}\nlog: {{format: json}}\n"
                           + sink_cfg)
            daemon = subprocess.Popen([sys.executable, "-m", "wattd", "run", "-c", str(cfg)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cat = subprocess.Popen(["cat", str(link2)], stdout=subprocess.DEVNULL)
            idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10**6)"])
            floor = subprocess.Popen([sys.executable, "-c", FLOOR, str(link3)])
            skeleton = subprocess.Popen([sys.executable, "-c", SKELETON, str(link4),
                                         str(tmp / "skeleton.lp")])
            procs += [daemon, cat, idle, floor, skeleton]
            measured = (daemon, cat, idle, floor, skeleton)
            time.sleep(5.0)  # start-up (imports) is not steady state
            start = {p.pid: cpu_seconds(p.pid) for p in measured}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - t0
            used = {p.pid: cpu_seconds(p.pid) - start[p.pid] for p in measured}
            rss = peak_rss_mb(daemon.pid)
            with open(next((tmp / "journal").glob("*.lp")), "rb") as fh:
                lines = sum(1 for _ in fh)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            delivered = None
            if server is not None:
                try:
                    series = server.query("SELECT count(power_w) FROM wattd_power",
                                          db="wattd")["results"][0].get("series") or []
                    delivered = series[0]["values"][0][1] if series else 0
                finally:
                    server.stop()
    result = {
        "bench": "daemon_cpu",
        "seconds": round(wall, 1),
        "feed": args.feed,
        "sink": args.sink,
        **({"points_delivered": delivered} if args.sink != "none" else {}),
        "readings_per_s": round(lines / (wall + 5.0), 2),
        "daemon_cpu_pct_of_core": round(100 * used[daemon.pid] / wall, 3),
        "reference_cat_cpu_pct_of_core": round(100 * used[cat.pid] / wall, 3),
        "reference_idle_python_cpu_pct_of_core": round(100 * used[idle.pid] / wall, 3),
        "reference_asyncio_floor_cpu_pct_of_core": round(100 * used[floor.pid] / wall, 3),
        "ratio_vs_asyncio_floor": (round(used[daemon.pid] / used[floor.pid], 2)
                                   if used[floor.pid] > 0 else None),
        "target_ratio_vs_floor": 1.5,
        "reference_skeleton_cpu_pct_of_core": round(100 * used[skeleton.pid] / wall, 3),
        "skeleton_ratio_vs_asyncio_floor": (round(used[skeleton.pid] / used[floor.pid], 2)
                                            if used[floor.pid] > 0 else None),
        "daemon_peak_rss_mb": round(rss, 1),
        "target_cpu_pct": 0.5,
        "target_rss_mb": 60,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
