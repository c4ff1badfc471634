"""Benchmark: `wattd report` over a 10-million-reading journal.

Generates a journal shaped like the daemon's (one meter at 4 readings/s,
full `wattd_power` lines with run tags, a few hundred runs with markers and
`wattd_run` results, 16 MB segments, every other one gzip-compressed) in a
temp dir, then times `python -m wattd report --format json` as a subprocess
(peak RSS from wait4) against a reference: a bare Python `for line in file`
loop over the same segments (plain and gzip), in a subprocess too.

    .venv/bin/python bench/bench_report.py [--readings N] [--keep DIR]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

S = 1_000_000_000
T0 = 1_700_000_000 * S
PERIOD_NS = 250_000_000
SEGMENT_BYTES = 16 << 20

REFERENCE = r"""
import gzip, sys
from pathlib import Path
n = 0
for p in sorted(Path(sys.argv[1]).iterdir()):
    opener = gzip.open if p.name.endswith('.gz') else open
    with opener(p, 'rb') as fh:
        for line in fh:
            n += 1
print(n)
"""


def generate(directory: Path, readings: int, runs: int) -> dict[str, int]:
    cycle = readings // runs  # idle quarter, then the run
    idle = cycle // 4
    segment = 1
    buf: list[str] = []
    size = 0
    segments_gz = 0

    def flush(final: bool = False) -> None:
        nonlocal segment, buf, size, segments_gz
        data = "".join(buf).encode()
        name = f"{segment:08d}.lp"
        if segment % 2 == 0 and not final:
            with gzip.open(directory / (name + ".gz"), "wb", compresslevel=1) as fh:
                fh.write(data)
            segments_gz += 1
        else:
            (directory / name).write_bytes(data)
        segment += 1
        buf = []
        size = 0

    energy = 0.0
    run_no = 0
    tags = ""
    start_ns = 0
    for i in range(readings):
        t = T0 + i * PERIOD_NS
        phase = i % cycle
        if phase == idle:
            run_no += 1
            lang = "python" if run_no % 2 else "rust"
            name = f"{lang}-{(run_no + 1) // 2}"
            tags = f"lang={lang},requests=500000,run={name}"
            start_ns = t - PERIOD_NS // 2
            buf.append(f"wattd_marker,run={name},source=127.0.0.1,verb=start "
                       f'text="lang={lang} requests=500000" {start_ns}\n')
        elif phase == 0 and run_no:
            stop_ns = t - PERIOD_NS // 2
            buf.append(f"wattd_marker,run={name},source=127.0.0.1,verb=stop "
                       f'text="" {stop_ns}\n')
            buf.append(f"wattd_run,{tags.replace(',run=', ',meter=pi,run=')} "
                       f"energy_j=1.0,duration_s={(stop_ns - start_ns) / S},samples=1i,"
                       f"start_ns={start_ns}i {stop_ns}\n")
            tags = ""
        power = (2.7 if phase < idle else 4.2 + (run_no % 2) * 0.4) + (i % 13) * 0.01
        energy += power * 0.25
        head = f"wattd_power,{tags.replace(',requests', ',meter=pi,requests')}" if tags \
            else "wattd_power,meter=pi"
        line = (f"{head} power_w={power:.3f},voltage_v=230.1,current_a={power / 230:.4f},"
                f"apparent_va={power * 1.6:.2f},power_factor=0.62,energy_j={energy:.3f},"
                f"clock_synced=true {t}\n")
        buf.append(line)
        size += len(line)
        if size >= SEGMENT_BYTES:
            flush()
    if buf:
        flush(final=True)
    return {"segments": segment - 1, "segments_gz": segments_gz}


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall time, peak RSS (KiB) and stdout of a child process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss, text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this directory")
    args = parser.parse_args()
    tmp = None
    if args.keep:
        directory = args.keep
        directory.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="wattd-bench-report-")
        directory = Path(tmp)
    try:
        t0 = time.perf_counter()
        if not any(directory.iterdir()):
            seg = generate(directory, args.readings, args.runs)
        else:
            seg = {"segments": len(list(directory.iterdir())), "segments_gz": -1}
        gen_s = time.perf_counter() - t0
        on_disk = sum(p.stat().st_size for p in directory.iterdir())
        ref_s, ref_rss, ref_out = timed([sys.executable, "-c", REFERENCE, str(directory)])
        rep_s, rep_rss, rep_out = timed([sys.executable, "-m", "wattd", "report",
                                         "--journal", str(directory), "--format", "json"])
        doc = json.loads(rep_out)
        lines = int(ref_out)
        print(json.dumps({
            "bench": "report",
            "readings": args.readings,
            "lines": lines,
            "runs_found": len(doc["runs"]),
            "groups": len(doc["groups"]),
            "segments": seg["segments"],
            "segments_gz": seg["segments_gz"],
            "journal_bytes_on_disk": on_disk,
            "generate_s": round(gen_s, 2),
            "report_s": round(rep_s, 2),
            "report_readings_per_s": round(args.readings / rep_s),
            "report_peak_rss_mib": round(rep_rss / 1024, 1),
            "reference": "bare python `for line in file` over the same segments",
            "reference_s": round(ref_s, 2),
            "reference_lines_per_s": round(lines / ref_s),
            "reference_peak_rss_mib": round(ref_rss / 1024, 1),
            "report_vs_reference": round(rep_s / ref_s, 2),
        }))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
