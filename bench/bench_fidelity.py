"""Stop replies against `wattd report`: step runs on a real daemon and pty meter.

Runs `wattd run` (a subprocess) on a simulated GB202 served on a pty, whose
power the benchmark steps: each run is constant -> step -> constant power,
with its start and stop markers sent over UDP with the sender timestamp
back-dated (``--backdate-ms``, 150 ms) or absent, in every combination; every
other block of ten runs has both cores busy (busy-loop processes). After the
runs the daemon is stopped and `wattd report --format json` reads its journal:
for each run, the stop reply's ``energy_j`` against the report's. Prints the
worst relative difference (target <= 1e-6) and one JSON object; any run that
differs is described on stderr with the journal lines around its boundaries.

    python bench/bench_fidelity.py [--runs 200] [--quick] [--frame-ms 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fidelity_rig import FidelitySettings, run_fidelity

TARGET_REL_DIFF = 1e-6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 runs (smoke run)")
    parser.add_argument("--frame-ms", type=float, default=60.0,
                        help="the simulated chip's frame interval (the real chip: 104)")
    parser.add_argument("--backdate-ms", type=float, default=150.0)
    parser.add_argument("--holdback-ms", type=float, default=None,
                        help="markers.holdback_ms of the daemon (default: its own)")
    parser.add_argument("--before-s", type=float, default=0.35,
                        help="constant power from the start to the step")
    parser.add_argument("--after-s", type=float, default=0.55,
                        help="constant power from the step to the stop")
    parser.add_argument("--load-block", type=int, default=10,
                        help="runs per block; every other block loaded (0: all loaded)")
    parser.add_argument("--step", action="append", default=[], metavar="W1:W2",
                        help="power before:after the step (repeatable; default: a mix)")
    args = parser.parse_args()
    runs = 20 if args.quick else args.runs
    settings = FidelitySettings(frame_interval_s=args.frame_ms / 1e3,
                                backdate_ms=args.backdate_ms, before_s=args.before_s,
                                after_s=args.after_s, load_block=args.load_block)
    if args.step:
        settings.steps_w = tuple((float(a), float(b)) for a, b in
                                 (text.split(":", 1) for text in args.step))
    if args.holdback_ms is not None:
        settings.markers["holdback_ms"] = args.holdback_ms
    with tempfile.TemporaryDirectory(prefix="wattd-fidelity-") as tmp:
        result = run_fidelity(Path(tmp), runs, settings, progress=True)
        for outcome in result.differing(TARGET_REL_DIFF):
            print(result.describe(outcome), file=sys.stderr)
    summary = result.summary(TARGET_REL_DIFF)
    summary.update(frame_ms=args.frame_ms, backdate_ms=args.backdate_ms,
                   holdback_ms=args.holdback_ms, report_notes=result.report_notes)
    print(f"fidelity: {summary['runs']} step runs ({summary['runs_loaded']} with both cores "
          f"busy), worst |reply - report| / report = {summary['worst_rel_diff']:.3g} "
          f"(target <= {TARGET_REL_DIFF:g}), {summary['runs_differing']} differing, "
          f"{summary['seconds']:g} s", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
