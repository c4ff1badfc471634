"""wrk text output -> results.

wrk prints times with a unit (``us``, ``ms``, ``s``, ``m``, ``h``), byte
counts in binary units (``B``, ``KB``, ``MB``, ``GB``, ``TB``: powers of
1024) and rates with metric suffixes (``k``, ``M``, ``G``: powers of 1000).
"""

from __future__ import annotations

from wattd.loadgen import (
    LoadResults,
    ResultsError,
    number,
    set_quantile,
    well_known_percentiles,
)

TOOL = "wrk"
_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BYTE_UNITS = {"B": 1.0, "KB": 1024.0, "MB": 1024.0**2, "GB": 1024.0**3, "TB": 1024.0**4}
_METRIC = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def time_ms(text: str) -> float:
    """``7.25ms`` -> 7.25; ``1.01s`` -> 1010.0; ``850.00us`` -> 0.85."""
    for unit in ("us", "ms", "s", "m", "h"):  # two-letter units first: "ms" ends in "s"
        if text.endswith(unit):
            return number(text[:-len(unit)], "wrk time") * _TIME_UNITS_MS[unit]
    raise ResultsError(f"wrk time {text[:40]!r} has no unit")


def size_bytes(text: str) -> float:
    """``1.58MB`` -> 1.58 * 1024**2."""
    for unit in ("KB", "MB", "GB", "TB", "B"):
        if text.endswith(unit):
            return number(text[:-len(unit)], "wrk size") * _BYTE_UNITS[unit]
    raise ResultsError(f"wrk size {text[:40]!r} has no unit")


def metric(text: str) -> float:
    """``574.20`` -> 574.2; ``1.23k`` -> 1230.0; ``2.00M`` -> 2e6."""
    if text and text[-1] in _METRIC:
        return number(text[:-1], "wrk rate") * _METRIC[text[-1]]
    return number(text, "wrk rate")


def parse(text: str) -> LoadResults:
    values: dict[str, float] = {}
    in_distribution = False
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if not words:
            continue
        if line.startswith("Latency Distribution"):
            in_distribution = True
            continue
        if in_distribution and words[0].endswith("%") and len(words) == 2:
            set_quantile(values, number(words[0][:-1], "wrk percentile"), time_ms(words[1]))
            continue
        in_distribution = False
        if words[0] == "Latency" and len(words) >= 4:
            values["latency_ms_mean"] = time_ms(words[1])
            values["latency_ms_stdev"] = time_ms(words[2])
            values["latency_ms_max"] = time_ms(words[3])
        elif words[0] == "Req/Sec" and len(words) >= 4:
            values["thread_rps_mean"] = metric(words[1])
            values["thread_rps_max"] = metric(words[3])
        elif len(words) >= 5 and words[1] == "requests" and words[2] == "in":
            # "573 requests in 1.01s, 1.58MB read"
            values["requests"] = metric(words[0])
            values["duration_s"] = time_ms(words[3].rstrip(",")) / 1e3
            values["bytes"] = size_bytes(words[4])
        elif line.startswith("Socket errors:"):
            # "Socket errors: connect 0, read 3, write 0, timeout 12"
            failed = 0.0
            parts = line.partition(":")[2].split(",")
            for part in parts:
                kind_count = part.split()
                if len(kind_count) == 2:
                    count = metric(kind_count[1])
                    values[f"socket_errors_{kind_count[0]}"] = count
                    failed += count
            values["failed"] = failed
        elif line.startswith("Non-2xx or 3xx responses:"):
            values["non_2xx"] = metric(words[-1])
        elif words[0] == "Requests/sec:" and len(words) == 2:
            values["rps"] = metric(words[1])
        elif words[0] == "Transfer/sec:" and len(words) == 2:
            values["transfer_bytes_s"] = size_bytes(words[1])
    missing = [k for k in ("requests", "duration_s", "rps") if k not in values]
    if missing:
        raise ResultsError("wrk output has no summary (interrupted before it finished?): "
                           f"missing {', '.join(missing)}")
    values.setdefault("failed", 0.0)  # wrk prints "Socket errors:" only when there were some
    if "latency_ms_mean" in values:
        values["time_per_request_ms"] = values["latency_ms_mean"]
    well_known_percentiles(values)
    return LoadResults(TOOL, values)
