"""`wattd mark` start-up on a regular install, against `python -c pass` of the same interpreter.

The benchmark makes its own install: it builds a wheel of this tree (`pip
wheel`), creates a fresh virtual environment in a temp directory and installs
the wheel there (`pip install`, which also compiles the byte code, as any
install does). An editable install would not do: its finder's `.pth` slows
`python -c pass` itself, which inflates the reference.

A tiny UDP responder in this process answers every marker at once (`ok
<verb> <name> id=<id>`), so what is timed is the command's start-up and exit,
not the daemon's work. `wattd mark event bench --to RESPONDER` (the installed
console script) and `python -c pass` (the venv's interpreter) run alternately,
`--runs` times each after a warm-up; the medians and their ratio are printed
as one JSON object, with the children's CPU time (user + system, from
wait4) beside the wall times: on a shared machine it varies less. Target:
wall-time ratio <= 2.0.

    python bench/bench_mark_startup.py [--runs 21] [--with-deps]

By default the wheel is installed without its dependencies (the mark path
needs none of them, and a run then also proves it imports none); --with-deps
installs them too (from the package index, slower).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.0


def responder(sock: socket.socket, stop: threading.Event) -> None:
    """Answer each marker datagram with an ok reply carrying its id."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(2048)
        except TimeoutError:
            continue
        words = data.split(b" ")
        msg_id = next((w[3:] for w in words if w.startswith(b"id=")), b"")
        head = b" ".join(words[:2]) if len(words) > 1 and not words[1].count(b"=") else words[0]
        sock.sendto(b"ok " + head + b" id=" + msg_id, addr)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", "WATTD_MARKER")}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


def make_install(tmp: Path, with_deps: bool) -> Path:
    """A wheel of this tree installed in a fresh venv under ``tmp``; returns its bin dir."""
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wheel = next(wheels.glob("wattd-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    subprocess.run([*pip, *([] if with_deps else ["--no-deps"]), str(wheel)], check=True,
                   stdout=subprocess.DEVNULL)
    return venv / "bin"


def run_ms(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall ms, CPU ms of the child: user + system, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = (time.perf_counter() - t0) * 1e3
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return elapsed, (usage.ru_utime + usage.ru_stime) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21, help="runs of each command (>= 15)")
    parser.add_argument("--with-deps", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wattd-bench-mark-") as tmp_name:
        tmp = Path(tmp_name)
        bin_dir = make_install(tmp, args.with_deps)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        stop = threading.Event()
        thread = threading.Thread(target=responder, args=(sock, stop), daemon=True)
        thread.start()
        to = f"127.0.0.1:{sock.getsockname()[1]}"
        env = clean_env()
        mark = [str(bin_dir / "wattd"), "mark", "event", "bench", "--to", to]
        base = [str(bin_dir / "python"), "-c", "pass"]
        try:
            for _ in range(3):  # warm the page cache
                run_ms(mark, env, tmp)
                run_ms(base, env, tmp)
            marks, bases, ratios, mark_cpu, base_cpu = [], [], [], [], []
            for _ in range(args.runs):
                m, m_cpu = run_ms(mark, env, tmp)
                b, b_cpu = run_ms(base, env, tmp)
                marks.append(m)
                bases.append(b)
                ratios.append(m / b)
                mark_cpu.append(m_cpu)
                base_cpu.append(b_cpu)
        finally:
            stop.set()
            thread.join(2)
            sock.close()
    m_ms, b_ms = statistics.median(marks), statistics.median(bases)
    print(json.dumps({
        "bench": "mark_startup", "install": "wheel in a fresh venv" +
        (" (with dependencies)" if args.with_deps else " (--no-deps)"),
        "runs": args.runs, "wattd_mark_ms": round(m_ms, 2), "python_c_pass_ms": round(b_ms, 2),
        "ratio": round(m_ms / b_ms, 3), "median_paired_ratio": round(statistics.median(ratios), 3),
        "wattd_mark_min_ms": round(min(marks), 2), "python_c_pass_min_ms": round(min(bases), 2),
        "wattd_mark_cpu_ms": round(statistics.median(mark_cpu), 2),
        "python_c_pass_cpu_ms": round(statistics.median(base_cpu), 2),
        "cpu_ratio": round(statistics.median(mark_cpu) / statistics.median(base_cpu), 3),
        "target_ratio": TARGET_RATIO,
    }))


if __name__ == "__main__":
    main()
