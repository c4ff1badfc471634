"""The ``result`` and ``sample`` verbs on the engine's timeline (SPEC 9.2, 9.3).

Pure: the engine hands in its timeline and the runs closed lately; what comes
back is the lines to journal and the typed reply event.
"""

from __future__ import annotations

from collections.abc import Iterable

from wattd.errors import MarkerInputError
from wattd.markers import results as run_results
from wattd.markers import samples
from wattd.markers.events import ResultAccepted, Unanswered
from wattd.markers.intervals import Interval
from wattd.markers.protocol import MarkerMessage
from wattd.markers.results import RecentRuns
from wattd.markers.timeline import Span, Timeline
from wattd.markers.wire import FIELD_VERBS

__all__ = ["FIELD_VERBS", "RecentRuns", "handle", "interval_ref"]


def run_ref(span: Span) -> run_results.RunRef:
    return run_results.RunRef(span.run, span.start_ns, dict(span.tags))


def interval_ref(interval: Interval) -> run_results.RunRef:
    return run_results.RunRef(interval.run, interval.start_rt_ns, dict(interval.tags))


def handle(msg: MarkerMessage, source: str, timeline: Timeline, all_meters: list[str],
           recent: RecentRuns, recv_boot: int,
           t_rt: int) -> tuple[list[str], ResultAccepted | Unanswered]:
    """A ``result`` or ``sample`` on ``msg.meter`` (default: every meter)."""
    if msg.meter is not None and msg.meter not in all_meters:
        raise MarkerInputError("unknown", f"no meter {msg.meter!r}")
    meters = [msg.meter] if msg.meter is not None else all_meters
    if msg.verb == "sample":
        samples.require_ts(msg)
        return handle_sample(msg, timeline, meters, t_rt)
    return handle_result(msg, source, timeline, meters, recent, recv_boot)


def handle_sample(msg: MarkerMessage, timeline: Timeline, meters: Iterable[str],
                  t_rt: int) -> tuple[list[str], Unanswered]:
    """One ``wattd_cpu`` line, tagged with the one run open at the sample's time."""
    assert msg.name is not None
    found: dict[str, dict[str, str]] = {}
    for meter in meters:
        tags = timeline.tags_at(meter, t_rt)
        if tags:
            found.setdefault(tags.get("run", ""), tags)
    run_tags = dict(next(iter(found.values()))) if len(found) == 1 else {}
    return [samples.sample_line(msg, t_rt, run_tags)], Unanswered(msg_id=msg.msg_id)


def handle_result(msg: MarkerMessage, source: str, timeline: Timeline, meters: Iterable[str],
                  recent: RecentRuns,
                  recv_boot: int) -> tuple[list[str], ResultAccepted]:
    """``result``: journaled against the open run ``name``, or one closed
    within ``markers.result_window_s``."""
    assert msg.name is not None
    ref: run_results.RunRef | None = None
    for meter in meters:
        span = timeline.run_on(meter)
        if span is not None and span.run == msg.name:
            ref = run_ref(span)
            break
    if ref is None:
        ref = recent.find(msg.name, recv_boot)
    if ref is None:
        raise MarkerInputError("unknown", f"run {msg.name!r} is neither open nor closed "
                               "within markers.result_window_s")
    return (run_results.result_lines(msg, source, ref),
            ResultAccepted(msg.name, msg_id=msg.msg_id))
