"""JMeter JTL (CSV results file) -> results.

Header-driven: the first row names the columns (``timeStamp`` epoch ms,
``elapsed`` ms, ``success`` true/false are required; ``bytes`` is used when
present); any column order, extra columns allowed, every sample row counts.
Covers JMeter 2.13's default column set and 5.x's (which adds
``failureMessage``, ``sentBytes``, ``URL``, ``IdleTime``, ``Connect``).
Percentiles are by nearest rank over every sample's ``elapsed``.
"""

from __future__ import annotations

import csv
import io

from wattd.loadgen import (
    LoadResults,
    ResultsError,
    nearest_rank,
    number,
    set_quantile,
    well_known_percentiles,
)

TOOL = "jmeter"
REQUIRED = ("timeStamp", "elapsed", "success")


def has_header(first_line: str) -> bool:
    names = {name.strip().strip('"') for name in first_line.split(",")}
    return all(column in names for column in REQUIRED)


def parse(text: str) -> LoadResults:
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not rows[-1]:
        rows.pop()
    if not rows:
        raise ResultsError("JTL file is empty")
    header = [name.strip() for name in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ResultsError("JTL has no header row naming timeStamp, elapsed and success "
                           f"(missing {', '.join(missing)}); set "
                           "jmeter.save.saveservice.print_field_names=true")
    col = {name: i for i, name in enumerate(header)}
    i_ts, i_elapsed, i_success = col["timeStamp"], col["elapsed"], col["success"]
    i_bytes = col.get("bytes")
    elapsed: list[float] = []
    failed = 0
    total_bytes = 0.0
    first_ms: float | None = None
    last_end_ms: float | None = None
    body = rows[1:]
    for index, row in enumerate(body):
        line_no = index + 2
        if len(row) != len(header):
            if index == len(body) - 1:
                break  # a torn last row: JMeter was still writing
            raise ResultsError(f"JTL line {line_no}: {len(row)} columns, header has "
                               f"{len(header)}")
        ts_ms = number(row[i_ts], f"JTL line {line_no} timeStamp")
        ms = number(row[i_elapsed], f"JTL line {line_no} elapsed")
        success = row[i_success].strip().lower()
        if success not in ("true", "false"):
            raise ResultsError(f"JTL line {line_no}: success is {row[i_success][:20]!r}, "
                               "not true/false")
        failed += success == "false"
        elapsed.append(ms)
        first_ms = ts_ms if first_ms is None else min(first_ms, ts_ms)
        end = ts_ms + ms  # timeStamp is the sample's start (JMeter's default)
        last_end_ms = end if last_end_ms is None else max(last_end_ms, end)
        if i_bytes is not None:
            total_bytes += number(row[i_bytes], f"JTL line {line_no} bytes")
    if not elapsed:
        raise ResultsError("JTL has a header but no sample rows")
    assert first_ms is not None
    assert last_end_ms is not None
    values: dict[str, float] = {"requests": float(len(elapsed)), "failed": float(failed)}
    duration_s = (last_end_ms - first_ms) / 1e3
    if duration_s > 0:
        values["duration_s"] = duration_s
        values["rps"] = len(elapsed) / duration_s
    mean = sum(elapsed) / len(elapsed)
    values["time_per_request_ms"] = mean
    values["latency_ms_mean"] = mean
    ordered = sorted(elapsed)
    for q in range(101):
        set_quantile(values, q, nearest_rank(ordered, q))
    if i_bytes is not None:
        values["bytes"] = total_bytes
    well_known_percentiles(values)
    return LoadResults(TOOL, values)
