"""The marker timeline: which run and phase are open on which meter (SPEC 2).

One set of rules for everything that reads markers: the run engine applies
live messages, the restart restore and ``wattd report`` replay the
``wattd_marker`` points of the journal. They use this module, so the meters,
boundaries and tags of a run (and so its joules) cannot differ between them.

Rules: at most one run per meter; ``start NAME`` opens it on the targeted
meters (all of them when no meter is named; refused ``busy`` if any has a
run); ``start NAME phase=P`` opens P on the meters where NAME is open,
closing their current phase; ``stop``/``abort NAME phase=P`` closes P;
``stop``/``abort NAME`` closes the run and its phase. A replay never refuses
a start: the journal only holds starts the daemon accepted, so a start on a
busy meter means the daemon no longer had the earlier run (a restart that
did not reopen it); the earlier run is closed as ``superseded``.

Pure: no I/O, no clock. Times are whatever the caller stamps boundaries with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from wattd.errors import MarkerInputError
from wattd.markers import wire

# Why a span closed: named by the marker, with its run, by the next phase, or
# (replay only) by a later start on the same meter.
MARKER, WITH_RUN, REPLACED, SUPERSEDED = "marker", "with_run", "replaced", "superseded"


def encode_tags(tags: Mapping[str, str]) -> str:
    """User tags as the ``text`` field of a ``wattd_marker`` point: ``k=v k=v``,
    values percent-encoded as on the wire."""
    return " ".join(f"{k}={wire.encode_value(v)}" for k, v in tags.items())


def decode_tags(text: str) -> dict[str, str]:
    """Reverse of :func:`encode_tags`. An item that does not decode (a damaged
    journal line) is left out; the others are kept."""
    tags: dict[str, str] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            continue
        try:
            tags[key] = wire.decode_value(value)
        except MarkerInputError:
            continue
    return tags


NO_TAGS: Mapping[str, str] = MappingProxyType({})


class Mark(NamedTuple):
    """A start, stop, abort or event as the timeline sees it (a tuple: one is
    made per marker, on the marker's fast path)."""

    verb: str
    run: str
    phase: str | None = None
    meter: str | None = None  # None: every meter (start) or wherever the run is open
    tags: Mapping[str, str] = NO_TAGS


@dataclass(eq=False, slots=True)
class Span:
    """An open run (``phase`` None) or phase on one meter. A phase's tags are
    its run's tags updated with its own. Compared by identity."""

    meter: str
    run: str
    phase: str | None
    start_ns: int
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class Closed:
    span: Span
    cause: str  # MARKER, WITH_RUN, REPLACED or SUPERSEDED


@dataclass(slots=True)
class Change:
    """What one mark did, in order (per meter: the phase before its run)."""

    opened: list[Span] = field(default_factory=list)
    closed: list[Closed] = field(default_factory=list)


@dataclass(slots=True)
class _OnMeter:
    run: Span | None = None
    phase: Span | None = None
    # With keep_tags: what readings carried when, contiguous in time
    # (start, stop or None, reading tags).
    tag_spans: list[tuple[int, int | None, dict[str, str]]] = field(default_factory=list)

    def retag(self, t_ns: int, tags: dict[str, str] | None) -> None:
        spans = self.tag_spans
        if spans and spans[-1][1] is None:
            start, _, old = spans[-1]
            spans[-1] = (start, t_ns, old)
        if tags is not None:
            spans.append((t_ns, None, tags))


@dataclass(slots=True)
class _Everywhere:
    """A run started for every meter: a meter first seen later joins it (and
    its phase, when that too was started for every meter of the run)."""

    run: str
    start_ns: int
    tags: dict[str, str]
    phase: tuple[str, int, dict[str, str]] | None = None


class Timeline:
    """``replay``: marks come from the journal (see the module's rules).
    ``keep_tags``: remember the reading tags of each meter over time, for
    readings tagged after the marks that concern them (:meth:`tags_at`)."""

    def __init__(self, meters: Iterable[str] = (), *, replay: bool = False,
                 keep_tags: bool = False) -> None:
        self.replay = replay
        self.keep_tags = keep_tags
        self._meters: dict[str, _OnMeter] = {}
        self._everywhere: _Everywhere | None = None
        for name in meters:
            self.add_meter(name)

    def add_meter(self, name: str) -> list[Span]:
        """Know one more meter; returns the spans it joined (a run, and its
        phase, started for every meter and still open)."""
        if name in self._meters:
            return []
        state = self._meters[name] = _OnMeter()
        every = self._everywhere
        if every is None:
            return []
        state.run = Span(name, every.run, None, every.start_ns, dict(every.tags))
        self._retag(name, every.start_ns)
        joined = [state.run]
        if every.phase is not None:
            phase, start_ns, tags = every.phase
            state.phase = Span(name, every.run, phase, start_ns, dict(tags))
            self._retag(name, start_ns)
            joined.append(state.phase)
        return joined

    def run_on(self, meter: str) -> Span | None:
        state = self._meters.get(meter)
        return None if state is None else state.run

    def phase_on(self, meter: str) -> Span | None:
        state = self._meters.get(meter)
        return None if state is None else state.phase

    def open_runs(self) -> list[tuple[Span, Span | None]]:
        """(run, its open phase or None) per meter with a run, in meter order."""
        return [(s.run, s.phase) for s in self._meters.values() if s.run is not None]

    def reading_tags(self, meter: str) -> dict[str, str] | None:
        """The tags a reading of ``meter`` carries now (None: no run open)."""
        state = self._meters.get(meter)
        if state is None or state.run is None:
            return None
        run = state.run
        if state.phase is None:
            return {**run.tags, "run": run.run}
        return {**state.phase.tags, "run": run.run, "phase": state.phase.phase or ""}

    def tags_at(self, meter: str, t_ns: int) -> dict[str, str] | None:
        """With keep_tags: the tags of a reading of ``meter`` stamped ``t_ns``."""
        state = self._meters.get(meter)
        if state is None:
            return None
        for start, stop, tags in state.tag_spans:
            if start <= t_ns and (stop is None or t_ns < stop):
                return tags
        return None

    def forget_tags_before(self, meter: str, t_ns: int) -> None:
        """Drop the tag spans that ended at or before ``t_ns`` (readings are
        tagged in time order)."""
        state = self._meters.get(meter)
        spans = state.tag_spans if state is not None else []
        while spans and spans[0][1] is not None and spans[0][1] <= t_ns:
            spans.pop(0)

    def _retag(self, meter: str, t_ns: int) -> None:
        if self.keep_tags:
            self._meters[meter].retag(t_ns, self.reading_tags(meter))

    # -- the rules -------------------------------------------------------------

    def targets(self, mark: Mark) -> list[str]:
        """The meters ``mark`` applies to; raises MarkerInputError (``busy``,
        ``unknown``) for a mark the rules refuse, which then changes nothing."""
        if mark.verb == "event" or (mark.verb == "start" and mark.phase is None):
            if mark.meter is None:
                names = list(self._meters)
            elif mark.meter in self._meters:
                names = [mark.meter]
            else:
                raise MarkerInputError("unknown", f"no meter {mark.meter!r}")
            if mark.verb == "start" and not self.replay:
                busy = [(n, run) for n in names if (run := self._meters[n].run) is not None]
                if busy:
                    raise MarkerInputError("busy", ", ".join(f"{n} has run {run.run}"
                                                             for n, run in busy))
            return names
        names = self._open_on(mark)
        if mark.verb != "start" and mark.phase is not None:
            for name in names:
                phase = self._meters[name].phase
                if phase is None or phase.phase != mark.phase:
                    raise MarkerInputError("unknown", f"phase {mark.phase!r} of run "
                                           f"{mark.run!r} is not open on meter {name!r}")
        return names

    def _open_on(self, mark: Mark) -> list[str]:
        if mark.meter is not None:
            if mark.meter not in self._meters:
                raise MarkerInputError("unknown", f"no meter {mark.meter!r}")
            run = self._meters[mark.meter].run
            if run is None or run.run != mark.run:
                raise MarkerInputError("unknown", f"run {mark.run!r} is not open on meter "
                                       f"{mark.meter!r}")
            return [mark.meter]
        names = [n for n, s in self._meters.items() if s.run is not None and s.run.run == mark.run]
        if not names and (self._everywhere is None or self._everywhere.run != mark.run):
            raise MarkerInputError("unknown", f"run {mark.run!r} is not open")
        return names  # empty: a run for every meter, started before any meter was known

    def apply(self, mark: Mark, t_ns: int, targets: Iterable[str]) -> Change:
        """Apply ``mark`` at ``t_ns`` on ``targets`` (from :meth:`targets`)."""
        change = Change()
        if mark.verb == "event":
            return change
        for name in targets:
            state = self._meters[name]
            if mark.verb == "start" and mark.phase is None:
                if state.run is not None:
                    self._close_run(state, SUPERSEDED, change)
                state.run = Span(name, mark.run, None, t_ns, dict(mark.tags))
                change.opened.append(state.run)
            elif mark.verb == "start":
                assert state.run is not None
                if state.phase is not None:
                    change.closed.append(Closed(state.phase, REPLACED))
                state.phase = Span(name, mark.run, mark.phase, t_ns,
                                   {**state.run.tags, **mark.tags})
                change.opened.append(state.phase)
            elif mark.phase is not None:
                assert state.phase is not None
                change.closed.append(Closed(state.phase, MARKER))
                state.phase = None
            else:
                self._close_run(state, MARKER, change)
            self._retag(name, t_ns)
        if mark.meter is None:
            self._remember_everywhere(mark, t_ns)
        every = self._everywhere
        if every is not None and self._meters and not any(
                s.run is not None and s.run.run == every.run for s in self._meters.values()):
            self._everywhere = None  # closed on every meter it had, one by one
        return change

    @staticmethod
    def _close_run(state: _OnMeter, cause: str, change: Change) -> None:
        assert state.run is not None
        if state.phase is not None:
            change.closed.append(Closed(state.phase, WITH_RUN))
            state.phase = None
        change.closed.append(Closed(state.run, cause))
        state.run = None

    def _remember_everywhere(self, mark: Mark, t_ns: int) -> None:
        every = self._everywhere
        if mark.verb == "start" and mark.phase is None:
            self._everywhere = _Everywhere(mark.run, t_ns, dict(mark.tags))
        elif every is None or every.run != mark.run:
            return
        elif mark.verb == "start":
            assert mark.phase is not None
            every.phase = (mark.phase, t_ns, {**every.tags, **mark.tags})
        elif mark.phase is None:
            self._everywhere = None
        elif every.phase is not None and every.phase[0] == mark.phase:
            every.phase = None
