"""CPU share and peak RSS of `wattd run` with one simulated meter at the chip's real rate.

The simulated GB202 runs in its own process (`wattd simulate`), so only the
daemon is measured. Reference, in the same run: `cat PORT > /dev/null`
reading the same pty (the least any reader of those bytes can cost) and an
idle Python interpreter (the floor of a Python process). Targets: daemon
<= 0.5 % of one core, peak RSS <= 60 MB.

    python bench/bench_daemon_cpu.py [--seconds 60]
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

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        link = tmp / "ttySIM"
        link2 = tmp / "ttySIM2"
        sim = subprocess.Popen([sys.executable, "-m", "wattd", "simulate", "--power", "3.5",
                                "--link", str(link)], stdout=subprocess.PIPE, text=True)
        sim2 = subprocess.Popen([sys.executable, "-m", "wattd", "simulate", "--power", "3.5",
                                 "--link", str(link2)], stdout=subprocess.PIPE, text=True)
        procs = [sim, sim2]
        try:
            for _ in range(100):
                if link.exists() and link2.exists():
                    break
                time.sleep(0.05)
            cfg = tmp / "wattd.yaml"
            cfg.write_text(f"meters: [{{name: pi, driver: gb202, port: {link}}}]\n"
                           f"journal: {{dir: {tmp / 'journal'}}}\nlog: {{format: json}}\n")
            daemon = subprocess.Popen([sys.executable, "-m", "wattd", "run", "-c", str(cfg)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cat = subprocess.Popen(["cat", str(link2)], stdout=subprocess.DEVNULL)
            idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10**6)"])
            procs += [daemon, cat, idle]
            time.sleep(5.0)  # start-up (imports) is not steady state
            start = {p.pid: cpu_seconds(p.pid) for p in (daemon, cat, idle)}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            wall = time.monotonic() - t0
            used = {p.pid: cpu_seconds(p.pid) - start[p.pid] for p in (daemon, cat, idle)}
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
    result = {
        "bench": "daemon_cpu",
        "seconds": round(wall, 1),
        "readings_per_s": round(lines / (wall + 5.0), 2),
        "daemon_cpu_pct_of_core": round(100 * used[daemon.pid] / wall, 3),
        "reference_cat_cpu_pct_of_core": round(100 * used[cat.pid] / wall, 3),
        "reference_idle_python_cpu_pct_of_core": round(100 * used[idle.pid] / wall, 3),
        "daemon_peak_rss_mb": round(rss, 1),
        "target_cpu_pct": 0.5,
        "target_rss_mb": 60,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
