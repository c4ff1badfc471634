"""Load generators' outputs, parsed into numeric results (SPEC 9.1, 9.2).

Each parser is a pure function from the text a tool printed or wrote to a
:class:`LoadResults`; it raises :class:`ResultsError` (an input error) for
text it cannot read whole, and never returns a number that was not in the
input. :mod:`wattd.loadgen.detect` recognises which tool wrote a text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from wattd.errors import InputError

QUANTILE_PREFIX = "latency_ms_q"


class ResultsError(InputError):
    """A load generator's output that cannot be parsed (unknown, truncated, malformed)."""

    def __init__(self, detail: str) -> None:
        super().__init__("results", detail)


@dataclass(slots=True)
class LoadResults:
    """``values``: result keys of SPEC 9.2 (``latency_ms_qNN`` carry the distribution)."""

    tool: str
    values: dict[str, float] = field(default_factory=dict)

    def quantiles(self) -> dict[int, float]:
        """The ``latency_ms_qNN`` keys as {NN: ms}."""
        out = {}
        for key, value in self.values.items():
            if key.startswith(QUANTILE_PREFIX):
                out[int(key[len(QUANTILE_PREFIX):])] = value
        return dict(sorted(out.items()))

    def summary(self) -> dict[str, float]:
        """Every value but the distribution (what a person wants to read)."""
        return {k: v for k, v in self.values.items() if not k.startswith(QUANTILE_PREFIX)}


def number(text: str, what: str) -> float:
    """A finite decimal number, or ResultsError naming ``what``."""
    try:
        value = float(text)
    except ValueError:
        raise ResultsError(f"{what}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ResultsError(f"{what}: {text[:40]!r} is not a finite number")
    return value


def set_quantile(values: dict[str, float], q: float, ms: float) -> None:
    """Record percentile ``q`` (integral 0..100 only: the wire key is qNN)."""
    if q == int(q) and 0 <= q <= 100:
        values[f"{QUANTILE_PREFIX}{int(q)}"] = ms


def well_known_percentiles(values: dict[str, float]) -> None:
    """Fill ``latency_ms_p50/p90/p95/p99`` and ``latency_ms_max`` from the
    distribution where the tool gave those percentiles and not the key itself."""
    for q in (50, 90, 95, 99):
        key = f"{QUANTILE_PREFIX}{q}"
        if key in values:
            values.setdefault(f"latency_ms_p{q}", values[key])
    top = f"{QUANTILE_PREFIX}100"
    if top in values:
        values.setdefault("latency_ms_max", values[top])


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """Percentile by nearest rank (the smallest value with at least q % of
    the samples at or below it; q = 0 gives the minimum)."""
    n = len(sorted_values)
    if q <= 0:
        return sorted_values[0]
    rank = -(-q * n // 100)  # ceil(q * n / 100) without float surprises for integral q
    return sorted_values[min(n, max(1, int(rank))) - 1]
