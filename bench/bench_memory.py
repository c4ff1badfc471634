"""Memory of `wattd run` with one meter at its frame rate: total PSS of wattd's processes.

For each configuration (journal only; with an InfluxDB 1.x sink; with a v2 sink,
VictoriaMetrics's /api/v2/write), a daemon reads one simulated GB202 at the
chip's real rate for `--seconds` (60 by default); then the proportional set size
(/proc/PID/smaps_rollup `Pss`) of the daemon and of every process descended
from it is summed. The sink configurations also check that points were
delivered. References, measured in the same run the same way: an idle Python
interpreter (`python -c "import time; time.sleep(...)"`) and the Python floor
of bench_daemon_cpu (a bare asyncio loop reading an identical pty).

The meter is fed by a different interpreter binary (the system's python3, not
the one under test): PSS divides shared pages between the processes mapping
them, and a feeder running the same libpython would halve the daemon's share of
it and flatter the figure. Each configuration runs alone.

Targets (issue 17): journal only <= 22 MB, v1 sink <= 30 MB, v2 sink <= 45 MB.

    python bench/bench_memory.py [--seconds 60] [--only journal|v1|v2 ...]
        [--delivery thread|process]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_daemon_cpu import FEEDER, FLOOR  # noqa: E402
from tests.servers import InfluxDB1, VictoriaMetrics  # noqa: E402

TARGETS_MB = {"journal": 22.0, "v1": 30.0, "v2": 45.0}


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_pss_mb(pid: int) -> tuple[float, list[dict[str, Any]]]:
    procs = []
    for p in descendants(pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
            procs.append({"pid": p, "pss_mb": round(pss_kb(p) / 1024, 1), "cmd": cmd})
        except OSError:
            continue
    return round(sum(p["pss_mb"] for p in procs), 1), procs


def feeder_python() -> str:
    """An interpreter binary other than the one measured (see the module doc)."""
    for name in ("/usr/bin/python3", shutil.which("python3") or ""):
        if name and os.path.realpath(name) != os.path.realpath(sys.executable):
            return name
    return sys.executable  # the figure is then slightly flattered; said in the output


def status(port: int) -> dict[str, Any]:
    from wattd.markers.client import send_marker

    reply = send_marker("status", to=f"127.0.0.1:{port}", timeout_s=5.0)
    return dict(reply.status or {})


def measure_config(kind: str, seconds: float, delivery: str, tmp: Path, link: Path,
                   server: Any) -> dict[str, Any]:
    from tests.ports import free_port

    port = free_port("udp")
    cfg = {"meters": [{"name": "pi", "driver": "gb202", "port": str(link)}],
           "journal": {"dir": str(tmp / f"journal-{kind}")},
           "log": {"format": "json", "level": "warning"},
           "markers": {"listen": [f"127.0.0.1:{port}"]}}
    if kind == "v1":
        cfg["influxdb"] = [{"url": server.url, "api": "v1", "database": "wattd",
                            "delivery": delivery}]
    elif kind == "v2":
        cfg["influxdb"] = [{"url": server.url, "api": "v2", "org": "wattd",
                            "bucket": "wattd", "delivery": delivery}]
    path = tmp / f"{kind}.json"  # JSON is YAML
    path.write_text(json.dumps(cfg))
    daemon = subprocess.Popen([sys.executable, "-m", "wattd", "run", "-c", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
        total, procs = tree_pss_mb(daemon.pid)
        st = status(port)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    sinks = st.get("sinks", {})
    delivered = sum(int(s.get("delivered_points", 0)) for s in sinks.values())
    readings = int(st.get("meters", {}).get("pi", {}).get("readings", 0))
    return {"pss_mb": total, "processes": procs, "readings": readings,
            "delivered_points": delivered if kind != "journal" else None,
            "target_mb": TARGETS_MB[kind], "met": total <= TARGETS_MB[kind]}


def measure_reference(cmd: list[str], seconds: float) -> float:
    proc = subprocess.Popen(cmd)
    try:
        time.sleep(seconds)
        return tree_pss_mb(proc.pid)[0]
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", action="append", choices=list(TARGETS_MB))
    parser.add_argument("--delivery", choices=("thread", "process"), default="thread")
    args = parser.parse_args()
    kinds = args.only or list(TARGETS_MB)
    feeder_py = feeder_python()
    out: dict[str, Any] = {"bench": "memory", "seconds": args.seconds,
                           "delivery": args.delivery, "feeder_python": feeder_py}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        link, link_ref = tmp / "ttySIM", tmp / "ttyREF"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        feeder = subprocess.Popen([feeder_py, "-c", FEEDER, "1000", str(link), str(link_ref)],
                                  env=env)
        servers: dict[str, Any] = {}
        try:
            for _ in range(200):
                if link.exists() and link_ref.exists():
                    break
                time.sleep(0.05)
            ref_s = min(args.seconds, 10.0)
            out["reference_idle_python_pss_mb"] = measure_reference(
                [sys.executable, "-c", "import time; time.sleep(10**6)"], ref_s)
            out["reference_asyncio_floor_pss_mb"] = measure_reference(
                [sys.executable, "-c", FLOOR, str(link_ref)], ref_s)
            for kind in kinds:
                server = None
                if kind == "v1":
                    server = servers["v1"] = InfluxDB1(tmp / "influx")
                    server.start()
                    server.create_database("wattd")
                elif kind == "v2":
                    server = servers["v2"] = VictoriaMetrics(tmp / "vm")
                    server.start()
                out[kind] = measure_config(kind, args.seconds, args.delivery, tmp, link, server)
                if server is not None:
                    server.stop()
        finally:
            feeder.terminate()
            feeder.wait(10)
            for server in servers.values():
                server.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
