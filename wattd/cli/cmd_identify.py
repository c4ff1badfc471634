"""wattd identify FILE: which metering chip produced this capture?

Tries every serial driver (and the BL0942's four addresses) on a capture
(``wattd capture`` JSON lines, or raw bytes) and prints them best first with
the checksum hit rate. Exit 0 when at least one driver decodes the capture,
1 when none does (or the file cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sys

from wattd.protocols.base import SerialSettings

NOMINAL_BYTE_NS = SerialSettings(4800).wire_time_ns(1)  # raw files only: relative timing


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="capture (JSON lines) or raw bytes")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _hints(best_driver: str, median_v: float | None) -> list[str]:
    hints = [f"next: wattd replay FILE --driver {best_driver} --format summary; then "
             "calibrate with a known load (firmware_notes/calibration.md)"]
    if best_driver in ("hlw8032", "gb202") and median_v is not None and not 180 <= median_v <= 260:
        hints.append(f"median voltage {median_v:.1f} V with Kv 1.88: this board's divider "
                     "differs (or the mains is 120 V); `wattd calibrate --reference-volts` "
                     "sets Kv")
    return hints


def execute(args: argparse.Namespace) -> int:
    from wattd.protocols.identify import identify
    from wattd.sources.capture_file import CaptureStats, read_capture

    stats = CaptureStats()
    try:
        reads = list(read_capture(args.file, NOMINAL_BYTE_NS, stats))
    except OSError as exc:
        print(f"wattd identify: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    candidates = identify(reads)
    decoded = [c for c in candidates if c.decodes]
    if args.format == "json":
        print(json.dumps({"file": args.file, "kind": stats.kind, "bytes": stats.bytes,
                          "reads": stats.reads,
                          "candidates": [c.as_dict() for c in candidates],
                          "best": decoded[0].driver if decoded else None}))
        return 0 if decoded else 1
    print(f"{args.file}: {stats.bytes} bytes in {stats.reads} reads ({stats.kind})")
    header = (f"{'driver':<20} {'decodes':<8} {'checksum':>9} {'coverage':>9} {'plausible':>10}"
              f" {'frames':>7} {'median V':>9} {'median A':>9} {'median W':>9}")
    print(header)

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for c in candidates:
        print(f"{c.label():<20} {'yes' if c.decodes else 'no':<8} "
              f"{c.checksum_hit_rate:>9.1%} {c.coverage:>9.1%} {c.plausible_rate:>10.1%} "
              f"{c.frames_checked:>7} {cell(c.median_voltage_v, 1):>9} "
              f"{cell(c.median_current_a, 3):>9} {cell(c.median_power_w, 2):>9}")
    if stats.bad_lines:
        print(f"({len(stats.bad_lines)} unreadable capture line(s) skipped)")
    if not decoded:
        print("no driver decodes this capture. Check the wiring (TX of the chip to RX of the "
              "adapter, through the opto-isolator), then capture again with the other line "
              "settings: `--driver bl0942` (8N1, polled) or `--driver hlw8032` (8E1, streamed).")
        return 1
    best = decoded[0]
    same = [c.driver for c in decoded[1:] if c.coverage == best.coverage
            and c.plausible_rate == best.plausible_rate]
    print(f"best: {best.label()}" + (f" (equally: {', '.join(same)})" if same else ""))
    if "cse7766" in same or (best.driver == "cse7766" and "hlw8032" in same):
        print("HLW8032 and CSE7766 send the same frame; only the voltage tells them apart: "
              "an HLW8032 (Kv 1.88) on 230 V mains reads like a CSE7766 on 120 V mains. "
              "Pick the one whose median voltage is your mains voltage.")
    for hint in _hints(best.driver, best.median_voltage_v):
        print(hint)
    return 0
