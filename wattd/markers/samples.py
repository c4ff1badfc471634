"""The ``sample`` verb (SPEC 9.3): a probe's CPU/memory reading of the
server, journaled as a ``wattd_cpu`` point at the sample's time, tagged with
the run open at that time. Pure: the engine passes the tag spans it keeps
for readings (realtime [start, stop) -> run, phase and user tags).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from wattd.errors import MarkerInputError
from wattd.lineprotocol import FieldValue, format_line
from wattd.markers import wire
from wattd.markers.protocol import MarkerMessage

CPU_MEASUREMENT = "wattd_cpu"
INTEGER_FIELDS = frozenset(("procs",))

# (start_rt_ns, stop_rt_ns or None while open, tags)
Span = tuple[int, "int | None", dict[str, str]]


def run_tags_at(t_ns: int, spans_by_meter: Iterable[Sequence[Span]]) -> dict[str, str]:
    """Tags of the run open at ``t_ns`` on the given meters: those of the one
    run found there, nothing when none is open or several different runs are."""
    found: dict[str, dict[str, str]] = {}
    for spans in spans_by_meter:
        for start, stop, tags in spans:
            if start <= t_ns and (stop is None or t_ns < stop):
                found.setdefault(tags.get("run", ""), tags)
                break
    if len(found) != 1:
        return {}
    return dict(next(iter(found.values())))


def sample_line(msg: MarkerMessage, t_ns: int, run_tags: dict[str, str]) -> str:
    """The ``wattd_cpu`` line for one sample (ts already checked by the caller)."""
    assert msg.name is not None
    fields: dict[str, FieldValue] = {}
    for key, text in msg.tags.items():
        if key == "target":
            continue
        value = wire.check_field_number(key, text)
        fields[key] = int(value) if key in INTEGER_FIELDS and value == int(value) else value
    if not fields:
        raise MarkerInputError("syntax", "sample needs at least one field")
    tags = {k: v for k, v in run_tags.items() if k not in fields}
    tags["host"] = msg.name
    target = msg.tags.get("target")
    if target:
        tags["target"] = target
    return format_line(CPU_MEASUREMENT, tags, fields, t_ns)


def require_ts(msg: MarkerMessage) -> int:
    if msg.ts_ns is None:
        raise MarkerInputError("syntax", "sample needs ts= (the probe's clock, ns)")
    return msg.ts_ns
