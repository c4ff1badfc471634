"""CPU share of `wattd probe` at its default 0.5 s interval (SPEC 9.3:
target <= 0.5 % of one core), beside references measured in the same run:
a shell loop that runs `cat /proc/stat` every 0.5 s (the least any /proc
sampler at that rate costs: one fork+exec a tick), a shell loop that only
sleeps 0.5 s, and an idle Python interpreter (the floor of a Python process).

Each process is measured by its own utime+stime (+ reaped children's) between
a warm-up and the end, so interpreter start-up is not counted. The probe
modes: --pid on a process tree, --match on a command line, the whole host.

    python bench/bench_probe.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="8 s instead of --seconds")
    args = parser.parse_args()
    seconds = 8.0 if args.quick else args.seconds
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))  # samples land here, unread (the kernel drops the excess)
    to = f"127.0.0.1:{sink.getsockname()[1]}"
    # a small "server": a parent with two children, all asleep
    server = subprocess.Popen(["sh", "-c", "sleep 1000 & sleep 1000 & wait"],
                              start_new_session=True, stdout=subprocess.DEVNULL)
    probe = [sys.executable, "-m", "wattd", "probe", "--interval", "0.5", "--to", to]
    quiet = subprocess.DEVNULL  # the probes' closing "N samples sent" lines
    procs = {
        "probe_pid": subprocess.Popen([*probe, "--pid", str(server.pid)], stderr=quiet),
        "probe_match": subprocess.Popen([*probe, "--match", "sleep 1000"], stderr=quiet),
        "probe_host": subprocess.Popen(probe, stderr=quiet),
        "ref_cat_proc_stat": subprocess.Popen(
            ["sh", "-c", "while :; do cat /proc/stat >/dev/null; sleep 0.5; done"],
            stdout=quiet),
        "ref_sleep_loop": subprocess.Popen(["sh", "-c", "while :; do sleep 0.5; done"],
                                           stdout=quiet),
        "ref_idle_python": subprocess.Popen([sys.executable, "-c",
                                             "import time\nwhile True: time.sleep(0.5)"]),
    }
    try:
        time.sleep(args.warmup)
        start = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        end = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    finally:
        for p in procs.values():
            p.terminate()
        os.killpg(server.pid, signal.SIGTERM)  # the shell and its sleeping children
        for p in [*procs.values(), server]:
            p.wait(10)
        sink.close()
    share = {name: 100.0 * (end[name] - start[name]) / elapsed for name in procs}
    print(json.dumps({
        "seconds": round(elapsed, 2), "interval_s": 0.5, "clk_tck": CLK_TCK,
        "cpu_pct_of_one_core": {k: round(v, 3) for k, v in share.items()},
        "target_pct": 0.5,
        "met": all(share[k] <= 0.5 for k in ("probe_pid", "probe_match", "probe_host")),
        "note": "resolution is one clock tick (1/CLK_TCK s) over the measured seconds",
    }))


if __name__ == "__main__":
    main()
