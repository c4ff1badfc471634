"""ab ``-e FILE`` CSV (``Percentage served,Time in ms``) -> the distribution."""

from __future__ import annotations

from wattd.loadgen import LoadResults, ResultsError, number, set_quantile, well_known_percentiles

HEADER = "Percentage served,Time in ms"
TOOL = "ab"


def parse(text: str) -> LoadResults:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != HEADER:
        raise ResultsError(f"not an ab -e CSV (first line is not {HEADER!r})")
    values: dict[str, float] = {}
    for number_, line in enumerate(lines[1:], start=2):
        pct, sep, ms = line.partition(",")
        if not sep:
            raise ResultsError(f"ab -e CSV line {number_}: expected 'percent,ms'")
        set_quantile(values, number(pct, f"ab -e CSV line {number_}"),
                     number(ms, f"ab -e CSV line {number_}"))
    if not values:
        raise ResultsError("ab -e CSV has no rows")
    well_known_percentiles(values)
    return LoadResults(TOOL, values)
