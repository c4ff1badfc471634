"""Reopen, after a restart, the runs whose start is in the journal without a stop,
and remember the runs closed within ``markers.result_window_s`` (a ``result``
sent after a restart still finds its run, SPEC 9.2).

The scan is bounded: only segments written to within ``max_run_s`` (a run
older than that would have been aborted) or the result window are read, and
only lines starting with ``wattd_marker`` are parsed in the first pass. A
second pass over the same segments feeds the reopened runs the
``wattd_power`` readings they had before the restart, so the energy before
the crash counts and the time with no readings shows as ``gap_s``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wattd.energy import NS
from wattd.errors import MarkerInputError
from wattd.journal.reader import iter_raw_lines
from wattd.journal.segments import Position, list_segments
from wattd.lineprotocol import LineProtocolError, parse_line
from wattd.markers.engine import RunEngine
from wattd.markers.points import MARKER_MEASUREMENT, mark_of
from wattd.markers.results import RunRef
from wattd.markers.timeline import Timeline
from wattd.readings import POWER_MEASUREMENT

_MARKER_PREFIX = MARKER_MEASUREMENT.encode() + b","
_POWER_PREFIX = POWER_MEASUREMENT.encode() + b","
BRACKET_NS = 10_000_000_000  # readings before the start kept to bracket it


@dataclass(slots=True)
class OpenRun:
    meter: str
    run: str
    start_ns: int
    tags: dict[str, str]
    phase: tuple[str, int, dict[str, str]] | None = None  # name, start, tags (run's included)


def _first_segment(directory: str, max_run_s: float, now_s: float) -> Position | None:
    segments = list_segments(directory)
    if not segments:
        return None
    horizon = now_s - max_run_s - 60.0
    start = segments[-1].number
    for info in reversed(segments):
        try:
            mtime = os.stat(info.path).st_mtime
        except OSError:
            continue
        if mtime < horizon:
            break
        start = info.number
    return Position(start, 0)


@dataclass(slots=True)
class JournalRuns:
    """What the end of the journal says about runs."""

    open: list[OpenRun]
    # runs closed at most the result window before now: (run, its stop time), oldest first
    closed: list[tuple[RunRef, int]]
    start: Position | None  # where the scan began (None: no segment)


def scan_runs(directory: str, meters: list[str], max_run_s: float, now_s: float,
              result_window_s: float = 0.0) -> JournalRuns:
    """Runs open at the end of the journal, per meter, and the runs closed less than
    ``result_window_s`` before ``now_s``."""
    start = _first_segment(directory, max(max_run_s, result_window_s), now_s)
    if start is None:
        return JournalRuns([], [], None)
    timeline = Timeline(meters, replay=True)
    recent_from_ns = round((now_s - result_window_s) * NS)
    closed: dict[str, tuple[RunRef, int]] = {}
    for _, raw in iter_raw_lines(directory, start):
        if not raw.startswith(_MARKER_PREFIX):
            continue
        try:
            point = parse_line(raw.decode("utf-8", "replace"))
        except LineProtocolError:
            continue
        mark = mark_of(point)
        if mark is None:
            continue
        if mark.meter is not None:
            timeline.add_meter(mark.meter)
        try:
            targets = timeline.targets(mark)
        except MarkerInputError:
            continue  # a stop without its start (before the scanned segments)
        for gone in timeline.apply(mark, point.t_ns, targets).closed:
            span = gone.span
            if span.phase is None and span.meter in meters and point.t_ns > recent_from_ns:
                closed.pop(span.run, None)  # the most recent close of a name counts
                closed[span.run] = (RunRef(span.run, span.start_ns, dict(span.tags)),
                                    point.t_ns)
    found = []
    for run, phase in timeline.open_runs():
        if run.meter in meters:
            found.append(OpenRun(run.meter, run.run, run.start_ns, dict(run.tags),
                                 None if phase is None or phase.phase is None
                                 else (phase.phase, phase.start_ns, dict(phase.tags))))
    return JournalRuns(found, list(closed.values()), start)


def reopen_runs(engine: RunEngine, directory: str, meters: list[str], max_run_s: float,
                now_rt_ns: int, now_boot_ns: int) -> list[OpenRun]:
    """Reopen the journal's open runs in ``engine`` and give it the runs closed within
    its result window; returns what was reopened."""
    window_s = engine.settings.result_window_ns / NS
    found = scan_runs(directory, meters, max_run_s, now_rt_ns / NS, window_s)
    offset = now_rt_ns - now_boot_ns
    for ref, stop_rt_ns in found.closed:
        engine.recent.closed(ref, stop_rt_ns - offset)
    runs, start = found.open, found.start
    if not runs:
        return []
    for item in runs:
        engine.reopen(item.meter, item.run, item.tags, item.start_ns, offset, item.phase)
    wanted = {item.meter: item.start_ns - BRACKET_NS for item in runs}
    for _, raw in iter_raw_lines(directory, start):
        if not raw.startswith(_POWER_PREFIX):
            continue
        try:
            point = parse_line(raw.decode("utf-8", "replace"))
        except LineProtocolError:
            continue
        meter = point.tags.get("meter")
        if meter not in wanted or point.t_ns < wanted[meter]:
            continue
        power = point.fields.get("power_w")
        counter = point.fields.get("energy_j")
        engine.seed(meter, point.t_ns - offset,
                    float(power) if isinstance(power, int | float) else None,
                    float(counter) if isinstance(counter, int | float) else None)
    return runs
