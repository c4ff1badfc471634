"""ApacheBench (ab 2.3, Debian's apache2-utils) text summary -> results.

Parsed by label, not by line position: ab prints optional lines (``Non-2xx
responses:``, ``Write errors:``, ``Keep-Alive requests:``, ``Total body
sent:``, the failure breakdown, the percentile table) depending on options
and outcome. An ab run that was interrupted before its summary (killed, a
fatal socket error) has the banner but no ``Complete requests:`` line.
"""

from __future__ import annotations

from wattd.loadgen import (
    LoadResults,
    ResultsError,
    number,
    set_quantile,
    well_known_percentiles,
)

BANNER = "This is ApacheBench"
TOOL = "ab"

# label (text before the first ':') -> result key; the value is the first word after it.
_LABELS = {
    "Concurrency Level": "concurrency",
    "Time taken for tests": "duration_s",
    "Complete requests": "requests",
    "Failed requests": "failed",
    "Write errors": "write_errors",
    "Non-2xx responses": "non_2xx",
    "Keep-Alive requests": "keep_alive_requests",
    "Total transferred": "bytes",
    "Total body sent": "body_sent_bytes",
    "HTML transferred": "html_bytes",
    "Requests per second": "rps",
    "Transfer rate": "transfer_kbytes_s",
    "Document Length": "document_length_bytes",
}
_CONNECTION_ROWS = {"Connect": "connect", "Processing": "processing",
                    "Waiting": "waiting", "Total": "total"}
_CONNECTION_COLUMNS = ("min", "mean", "sd", "median", "max")
_BREAKDOWN = {"Connect": "failed_connect", "Receive": "failed_receive",
              "Length": "failed_length", "Exceptions": "failed_exceptions"}
_REQUIRED = ("requests", "failed", "duration_s")


def parse(text: str) -> LoadResults:
    """Parse ab's standard output. ResultsError when the summary is missing or bad."""
    if BANNER not in text:
        raise ResultsError("not ApacheBench output (no 'This is ApacheBench' banner)")
    values: dict[str, float] = {}
    in_connection_table = False
    in_percentiles = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            in_connection_table = in_percentiles = False
            continue
        if line.startswith("Connection Times (ms)"):
            in_connection_table = True
            continue
        if line.startswith("Percentage of the requests served"):
            in_percentiles = True
            continue
        if in_percentiles and line[0].isdigit() and "%" in line:
            _percentile_row(line, values)
            continue
        label, sep, rest = line.partition(":")
        if not sep:
            continue
        label = label.strip()
        if in_connection_table and label in _CONNECTION_ROWS:
            _connection_row(_CONNECTION_ROWS[label], rest, values)
            continue
        if line.startswith("(") and "Connect:" in line:
            _breakdown(line, values)
            continue
        if label == "Time per request":
            first_word = rest.split()[0] if rest.split() else ""
            key = ("time_per_request_all_ms" if "across all" in rest
                   else "time_per_request_ms")
            values.setdefault(key, number(first_word, f"ab {label}"))
            continue
        found = _LABELS.get(label)
        if found is None:
            continue
        key = found
        words = rest.split()
        if not words:
            raise ResultsError(f"ab line {label!r} has no value")
        if key == "document_length_bytes" and not words[0][0].isdigit():
            continue  # "Variable" (ab -l)
        values[key] = number(words[0], f"ab {label}")
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise ResultsError("ab output has no summary (interrupted before it finished?): "
                           f"missing {', '.join(missing)}")
    if "total_ms_mean" in values:
        values["latency_ms_mean"] = values["total_ms_mean"]
    if "total_ms_max" in values:
        values["latency_ms_max"] = values["total_ms_max"]
    well_known_percentiles(values)
    return LoadResults(TOOL, values)


def _percentile_row(line: str, values: dict[str, float]) -> None:
    # "  50%      9"   or  " 100%     59 (longest request)"
    pct, _, rest = line.partition("%")
    words = rest.split()
    if not words:
        raise ResultsError(f"ab percentile row {line!r} has no time")
    set_quantile(values, number(pct, "ab percentile"), number(words[0], "ab percentile time"))


def _connection_row(row: str, rest: str, values: dict[str, float]) -> None:
    words = rest.split()
    if len(words) != len(_CONNECTION_COLUMNS):
        raise ResultsError(f"ab connection times row {row!r}: expected 5 numbers")
    for column, word in zip(_CONNECTION_COLUMNS, words, strict=True):
        values[f"{row}_ms_{column}"] = number(word, f"ab connection times {row}")


def _breakdown(line: str, values: dict[str, float]) -> None:
    # "(Connect: 0, Receive: 0, Length: 113, Exceptions: 0)"
    for part in line.strip("()").split(","):
        label, _, value = part.partition(":")
        key = _BREAKDOWN.get(label.strip())
        if key is not None:
            values[key] = number(value.strip(), f"ab failed requests {label.strip()}")
