"""The ``result`` verb (SPEC 9.2): a run's numeric results, journaled as
``wattd_result`` and ``wattd_latency`` points (SPEC 3). Pure: the engine
hands in the message, its receive time and where run NAME can be found.

A result belongs to the open run NAME, or else to the most recent run of
that name closed less than ``result_window_s`` ago (:class:`RecentRuns`).
Its points are stamped at the run's start (``run_start_ns``), so several
datagrams for one run accumulate into one InfluxDB point per series.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from wattd.errors import MarkerInputError
from wattd.lineprotocol import FieldValue, format_line
from wattd.markers import wire
from wattd.markers.protocol import MarkerMessage

RESULT_MEASUREMENT = "wattd_result"
LATENCY_MEASUREMENT = "wattd_latency"
QUANTILE_PREFIX = "latency_ms_q"
RECENT_MAX = 1024  # closed runs remembered (by name), oldest forgotten first


@dataclass(slots=True, frozen=True)
class RunRef:
    """What a result needs of its run: name, start and user tags."""

    run: str
    start_rt_ns: int
    tags: dict[str, str]


class RecentRuns:
    """Runs closed recently, by name: the target of a result sent after ``stop``."""

    def __init__(self, window_ns: int, max_runs: int = RECENT_MAX) -> None:
        self.window_ns = window_ns
        self.max_runs = max_runs
        self._runs: OrderedDict[str, tuple[RunRef, int]] = OrderedDict()

    def closed(self, ref: RunRef, closed_boot_ns: int) -> None:
        self._runs.pop(ref.run, None)
        self._runs[ref.run] = (ref, closed_boot_ns)
        while len(self._runs) > self.max_runs:
            self._runs.popitem(last=False)

    def find(self, name: str, now_boot_ns: int) -> RunRef | None:
        found = self._runs.get(name)
        if found is None or now_boot_ns - found[1] >= self.window_ns:
            return None
        return found[0]


def quantile_of(key: str) -> int | None:
    """``latency_ms_q95`` -> 95 (0..100), else None."""
    if not key.startswith(QUANTILE_PREFIX):
        return None
    digits = key[len(QUANTILE_PREFIX):]
    if not digits.isdigit() or len(digits) > 3 or int(digits) > 100 or (
            len(digits) > 1 and digits[0] == "0"):
        raise MarkerInputError("syntax", f"{key}: NN of latency_ms_qNN must be 0..100")
    return int(digits)


def result_lines(msg: MarkerMessage, source: str, ref: RunRef) -> list[str]:
    """The journal lines of one ``result`` datagram for run ``ref``."""
    tool = msg.tags.get("tool")
    values: dict[str, float] = {}
    quantiles: dict[int, float] = {}
    for key, text in msg.tags.items():
        if key == "tool":
            continue
        value = wire.check_field_number(key, text)
        q = quantile_of(key)
        if q is None:
            values[key] = value
        else:
            quantiles[q] = value
    if not values and not quantiles:
        raise MarkerInputError("syntax", "result needs at least one key=value")
    lines: list[str] = []
    if values:
        tags = _user_tags(ref.tags, values)
        tags.update(run=ref.run, source=source)
        if tool:
            tags["tool"] = tool
        fields: dict[str, FieldValue] = dict(values)
        fields["run_start_ns"] = ref.start_rt_ns
        lines.append(format_line(RESULT_MEASUREMENT, tags, fields, ref.start_rt_ns))
    for q, ms in sorted(quantiles.items()):
        tags = _user_tags(ref.tags, ("ms",))
        tags.update(run=ref.run, q=str(q))
        lines.append(format_line(LATENCY_MEASUREMENT, tags,
                                 {"ms": ms, "run_start_ns": ref.start_rt_ns}, ref.start_rt_ns))
    return lines


def _user_tags(tags: dict[str, str], field_names: Iterable[str]) -> dict[str, str]:
    # A user tag named like a field of the same point would make that name both a
    # tag and a field in the database: the field (what was sent) wins.
    names = set(field_names)
    return {k: v for k, v in tags.items() if k not in names}
