"""k6 ``--summary-export FILE`` JSON -> results.

The export holds ``metrics``: ``http_reqs`` {count, rate},
``http_req_duration`` {avg, min, med, max, p(90), p(95), ...} in ms,
``http_req_failed`` (a rate metric: ``passes`` counts failed requests),
``data_received`` {count} bytes; and, from k6 0.30, ``state.testRunDurationMs``.
"""

from __future__ import annotations

import json
from typing import Any

from wattd.loadgen import (
    LoadResults,
    ResultsError,
    number,
    set_quantile,
    well_known_percentiles,
)

TOOL = "k6"


def looks_like(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("metrics"), dict) and (
        "http_reqs" in obj["metrics"] or "http_req_duration" in obj["metrics"]
        or "iterations" in obj["metrics"])


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"k6 {what} is not a number")
    return number(repr(float(value)), f"k6 {what}")


def parse(text: str) -> LoadResults:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"not k6 summary JSON: {exc}") from None
    if not looks_like(obj):
        raise ResultsError("not a k6 --summary-export file (no http_reqs/http_req_duration "
                           "under 'metrics')")
    metrics: dict[str, Any] = obj["metrics"]
    values: dict[str, float] = {}
    reqs = metrics.get("http_reqs")
    if isinstance(reqs, dict):
        if "count" in reqs:
            values["requests"] = _num(reqs["count"], "http_reqs.count")
        if "rate" in reqs:
            values["rps"] = _num(reqs["rate"], "http_reqs.rate")
    duration = metrics.get("http_req_duration")
    if isinstance(duration, dict):
        for name, value in duration.items():
            ms = _num(value, f"http_req_duration.{name}")
            if name == "avg":
                values["time_per_request_ms"] = ms
                values["latency_ms_mean"] = ms
            elif name == "min":
                set_quantile(values, 0, ms)
            elif name == "max":
                values["latency_ms_max"] = ms
                set_quantile(values, 100, ms)
            elif name == "med":
                set_quantile(values, 50, ms)
            elif name.startswith("p(") and name.endswith(")"):
                q = number(name[2:-1], f"k6 percentile {name}")
                set_quantile(values, q, ms)
                if q == int(q):
                    values[f"latency_ms_p{int(q)}"] = ms
    failed = metrics.get("http_req_failed")
    if isinstance(failed, dict) and "passes" in failed:
        values["failed"] = _num(failed["passes"], "http_req_failed.passes")
    received = metrics.get("data_received")
    if isinstance(received, dict) and "count" in received:
        values["bytes"] = _num(received["count"], "data_received.count")
    state = obj.get("state")
    if isinstance(state, dict) and "testRunDurationMs" in state:
        values["duration_s"] = _num(state["testRunDurationMs"], "state.testRunDurationMs") / 1e3
    if "requests" not in values:
        raise ResultsError("k6 summary has no http_reqs count (not an HTTP test?)")
    # p(NN) keys: only the well-known ones are kept as latency_ms_pNN
    for key in [k for k in values if k.startswith("latency_ms_p")]:
        if key not in ("latency_ms_p50", "latency_ms_p90", "latency_ms_p95", "latency_ms_p99"):
            del values[key]
    well_known_percentiles(values)
    return LoadResults(TOOL, values)
