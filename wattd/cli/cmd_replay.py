"""wattd replay FILE: decode a capture (JSON lines with timing) or a raw byte file.

``--format jsonl`` (default) prints one JSON object per decoded reading and the
summary on stderr; ``--format summary`` prints only the summary on stdout.
Each reading's ``t_ns`` is stamped as the daemon stamps it (last byte's
arrival minus the frame's wire time; no adapter latency). Exit 0 once the
file was read (drops are counted in the summary), 1 if it cannot be read,
2 for a bad driver or coefficient.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from wattd.errors import UsageError
from wattd.protocols.base import Event, Measurement
from wattd.protocols.registry import get_driver
from wattd.sources.capture_file import CaptureStats, read_capture


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="capture (JSON lines) or raw bytes")
    parser.add_argument("--driver", default="gb202", help="decoder to use (default: gb202)")
    parser.add_argument("--format", choices=("jsonl", "summary"), default="jsonl")
    parser.add_argument("--coefficient", action="append", default=[], metavar="K=V",
                        help="calibration value, e.g. kv=1.88 (repeatable)")
    parser.add_argument("--address", type=int, default=0, metavar="A",
                        help="polled chips (bl0942): chip address 0-3, part of the checksum")


def parse_coefficients(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not key.strip() or number is None:
            raise UsageError(f"--coefficient expects K=V with a number, got {item!r}")
        out[key.strip()] = number
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def reading_json(m: Measurement, driver: str, wire_ns: int) -> str:
    return json.dumps({
        "t_ns": m.t_ns - wire_ns, "driver": driver, "power_w": _round(m.power_w),
        "voltage_v": _round(m.voltage_v), "current_a": _round(m.current_a),
        "apparent_va": _round(m.apparent_va), "power_factor": _round(m.power_factor),
        "energy_j": _round(m.energy_j), "pf_count": m.pf_count, "status": m.status,
    })


def execute(args: argparse.Namespace) -> int:
    spec = get_driver(args.driver)
    decoder = spec.make_decoder(parse_coefficients(args.coefficient), address=args.address)
    wire_ns = spec.serial.wire_time_ns(spec.frame_bytes)
    stats = CaptureStats()
    jsonl = args.format == "jsonl"

    def emit(events: list[Event], out: TextIO) -> None:
        if jsonl:
            for event in events:
                if isinstance(event, Measurement):
                    out.write(reading_json(event, spec.name, wire_ns) + "\n")

    last_t_ns = 0
    try:
        for t_ns, data in read_capture(args.file, spec.serial.wire_time_ns(1), stats):
            last_t_ns = t_ns
            emit(decoder.feed(data, t_ns), sys.stdout)
    except OSError as exc:
        print(f"wattd replay: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    flush = getattr(decoder, "flush", None)
    if flush is not None:  # a truncated trailing frame counts as `incomplete`
        emit(flush(last_t_ns), sys.stdout)
    if stats.bad_lines:
        print(f"wattd replay: {len(stats.bad_lines)} unreadable capture line(s), first at "
              f"line {stats.bad_lines[0]}", file=sys.stderr)
    summary = json.dumps(decoder.counters.summary(spec.name))
    print(summary, file=sys.stderr if jsonl else sys.stdout)
    return 0
