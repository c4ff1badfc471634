"""Capture files (SPEC 5): JSON lines ``{"t_ns": ..., "hex": "..."}``, one per read, or raw bytes.

``wattd capture`` writes them, ``wattd replay`` and ``wattd identify`` read them.
A raw byte file carries no timing: its bytes are given times as if they had
arrived back to back at the wire rate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

RAW_CHUNK_BYTES = 64


@dataclass(slots=True)
class CaptureStats:
    kind: str = "jsonl"  # or "raw"
    reads: int = 0
    bytes: int = 0
    bad_lines: list[int] = field(default_factory=list)  # line numbers that did not parse


def capture_line(t_ns: int, data: bytes) -> str:
    return json.dumps({"t_ns": t_ns, "hex": data.hex()}) + "\n"


def _is_jsonl(head: bytes) -> bool:
    first = head.lstrip()[:1]
    if first != b"{":
        return False
    line = head.lstrip().split(b"\n", 1)[0]
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and "hex" in obj


def read_capture(path: str | os.PathLike[str], byte_time_ns: int,
                 stats: CaptureStats | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(t_ns, data)`` reads in file order. OSError if the file cannot be read."""
    stats = stats if stats is not None else CaptureStats()
    with open(path, "rb") as fh:
        head = fh.read(4096)
        fh.seek(0)
        if _is_jsonl(head):
            stats.kind = "jsonl"
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    t_ns = int(obj["t_ns"])
                    data = bytes.fromhex(obj["hex"])
                except (ValueError, KeyError, TypeError):
                    stats.bad_lines.append(number)
                    continue
                stats.reads += 1
                stats.bytes += len(data)
                yield t_ns, data
            return
        stats.kind = "raw"
        offset = 0
        while chunk := fh.read(RAW_CHUNK_BYTES):
            offset += len(chunk)
            stats.reads += 1
            stats.bytes += len(chunk)
            yield offset * byte_time_ns, chunk
