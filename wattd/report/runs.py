"""Runs from the journal's markers, and their energy, for ``wattd report``.

The markers are replayed through :mod:`wattd.markers.timeline`, the rules
the daemon applies live, so a run covers the same meters over the same
[start, stop] here as in the daemon. Energies come from
:class:`wattd.energy.IntervalIntegrator`, the definition the daemon uses
online: one integrator per (run, phase, meter) is created at the start,
seeded with the meter's most recent readings (so the reading that brackets
the start is known even when it was journaled before the marker), fed every
later reading of that meter, and resolved once a reading at or after the
stop time has been seen.
"""

from __future__ import annotations

from collections import Counter, deque

from wattd.energy import IntervalIntegrator
from wattd.errors import MarkerInputError
from wattd.lineprotocol import FieldValue, Point
from wattd.markers.points import mark_of
from wattd.markers.timeline import REPLACED, SUPERSEDED, Change, Mark, Span, Timeline
from wattd.report.records import RunRecord, ScanStats

# Readings remembered per meter so that a start marker journaled after the
# readings around its boundary still finds them (the daemon holds readings back
# until markers are in, so in practice only the bracketing one is needed).
_RECENT = 512
_PLOT_POINTS = 4000  # per run and meter, decimated
NO_READINGS_NOTE = "no readings during the run: no energy"


def as_float(value: FieldValue | None) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    return float(value)


class _Tracker:
    __slots__ = ("integ", "plot_stride", "plot_tick", "record", "stop_ns")

    def __init__(self, record: RunRecord, plot: bool) -> None:
        self.record = record
        self.integ = IntervalIntegrator(record.start_ns)
        self.stop_ns: int | None = None
        self.plot_stride = 1
        self.plot_tick = 0
        if plot:
            record.plot = []


class MeterReadings:
    """One meter's readings on their way to its runs."""

    __slots__ = ("active", "last_t", "pending", "recent", "seen")

    def __init__(self) -> None:
        self.pending: list[tuple[int, float]] = []  # parsed, not yet fed (one block)
        self.recent: deque[tuple[int, float]] = deque(maxlen=_RECENT)
        self.active: list[_Tracker] = []
        self.last_t: int | None = None
        self.seen: deque[int] = deque(maxlen=_RECENT)  # stamps of readings without power


class RunTracking:
    """Markers and ``wattd_run`` points in, run records out (:meth:`finish`)."""

    def __init__(self, stats: ScanStats, *, plot: bool = False) -> None:
        self.stats = stats
        self._plot = plot
        self.meters: dict[str, MeterReadings] = {}
        self._timeline = Timeline(replay=True)
        self._trackers: dict[Span, _Tracker] = {}
        self._records: list[RunRecord] = []
        self._refused: Counter[str] = Counter()
        self._superseded = 0

    def meter(self, name: str) -> MeterReadings:
        state = self.meters.get(name)
        if state is None:
            state = self.meters[name] = MeterReadings()
            # A run started for every meter also covers a meter first seen later.
            for span in self._timeline.add_meter(name):
                self._open_tracker(span)
        return state

    # -- readings --------------------------------------------------------------

    def flush_all(self) -> None:
        for state in self.meters.values():
            if state.pending:
                self.flush(state)

    def flush(self, state: MeterReadings) -> None:
        """Feed a meter's queued readings (journal order) to its run integrators."""
        pending = state.pending
        state.pending = []
        self.stats.readings += len(pending)
        state.recent.extend(pending)
        last = pending[-1][0]
        if state.last_t is None or last > state.last_t:
            state.last_t = last
        if not state.active:
            return
        finished = False
        for tr in state.active:
            stop = tr.stop_ns
            if tr.record.plot is not None:
                for t, power in pending:
                    self._plot_add(tr, t, power)
            # Stops right after the first reading at or past the stop.
            taken = tr.integ.extend(pending, stop)
            if stop is not None and taken and pending[taken - 1][0] >= stop:
                finished = True
        if finished:
            keep = []
            for tr in state.active:
                if tr.stop_ns is not None and tr.integ.covers(tr.stop_ns):
                    self._resolve(tr, tr.stop_ns)
                else:
                    keep.append(tr)
            state.active = keep

    def seen(self, state: MeterReadings, t: int) -> None:
        """A reading without power: the meter was delivering (as the daemon
        counts it for ``no_readings``), nothing to integrate."""
        state.seen.append(t)
        for tr in state.active:
            tr.integ.seen(t)

    def _plot_add(self, tr: _Tracker, t: int, power: float) -> None:
        pts = tr.record.plot
        assert pts is not None
        if t < tr.record.start_ns or (tr.stop_ns is not None and t > tr.stop_ns):
            return
        tr.plot_tick += 1
        if tr.plot_tick < tr.plot_stride:
            return
        tr.plot_tick = 0
        pts.append((t, power))
        if len(pts) >= 2 * _PLOT_POINTS:
            del pts[1::2]
            tr.plot_stride *= 2

    # -- markers and run results -----------------------------------------------

    def _has_tags(self, point: Point, *names: str) -> bool:
        """A wattd point missing one of its tags is a bad line."""
        if all(point.tags.get(name) for name in names):
            return True
        self.stats.bad_lines += 1
        return False

    def on_marker(self, point: Point) -> None:
        if not self._has_tags(point, "run", "verb"):
            return
        mark = mark_of(point)
        if mark is None:
            return  # `event` (annotations) and anything else: nothing to integrate
        self._apply(mark, point.t_ns, mark.verb)

    def _apply(self, mark: Mark, t: int, end: str) -> None:
        if mark.meter is not None:
            self.meter(mark.meter)
        try:
            targets = self._timeline.targets(mark)
        except MarkerInputError:
            label = mark.run if mark.phase is None else f"{mark.run} phase {mark.phase}"
            self._refused[f"{mark.verb} {label}"] += 1
            return
        self._follow(self._timeline.apply(mark, t, targets), t, end)

    def _follow(self, change: Change, t: int, end: str) -> None:
        for closed in change.closed:
            tracker = self._trackers.pop(closed.span)
            if closed.cause == SUPERSEDED:
                # The daemon had lost this run (a restart that did not reopen it):
                # it stays open, integrated up to the meter's last reading.
                self._superseded += 1
            else:
                self._stop_tracker(tracker, t, "stop" if closed.cause == REPLACED else end)
        for span in change.opened:
            self._open_tracker(span)

    def _open_tracker(self, span: Span) -> None:
        record = RunRecord(run=span.run, phase=span.phase, meter=span.meter,
                           start_ns=span.start_ns, tags=dict(span.tags))
        self._records.append(record)
        tr = _Tracker(record, self._plot)
        state = self.meter(span.meter)
        tr.integ.extend(state.recent)
        for t in state.seen:  # a start journaled after the frames around it
            if t >= record.start_ns:
                tr.integ.seen(t)
                break
        if record.plot is not None:
            for t, power in state.recent:
                self._plot_add(tr, t, power)
        state.active.append(tr)
        self._trackers[span] = tr

    def _stop_tracker(self, tr: _Tracker, t: int, end: str) -> None:
        tr.record.end = end
        tr.record.stop_ns = max(t, tr.record.start_ns)
        tr.stop_ns = tr.record.stop_ns
        if end == "abort":
            tr.record.aborted = True
        if tr.integ.covers(tr.stop_ns):
            self._resolve(tr, tr.stop_ns)
            state = self.meters[tr.record.meter]
            state.active = [x for x in state.active if x is not tr]

    def _resolve(self, tr: _Tracker, stop_ns: int) -> None:
        record = tr.record
        record.integrated_to_ns = stop_ns
        if record.no_readings or not tr.integ.measured(stop_ns):
            # As the daemon decides it: no reading in [start, stop) and none on
            # each side to interpolate between, so no energy (never 0 J).
            record.no_readings = True
            record.note = NO_READINGS_NOTE
        else:
            try:
                record.result = tr.integ.result(stop_ns)
            except ValueError:
                record.note = "the stop marker came too late in the journal to integrate"
        if record.plot is not None:
            record.plot = [(t, p) for t, p in record.plot if t <= stop_ns]

    def on_run_point(self, point: Point) -> None:
        if not self._has_tags(point, "run", "meter"):
            return
        run, meter = point.tags["run"], point.tags["meter"]
        phase = point.tags.get("phase") or None
        fields = point.fields
        start = fields.get("start_ns")
        start_ns = start if isinstance(start, int) and not isinstance(start, bool) else None
        record = self._find_record(run, phase, meter, start_ns, point.t_ns)
        if record is None:
            if fields.get("no_readings") is True and start_ns is not None:
                # A meter with not one reading in the journal (its port never
                # delivered): the report had no run for it, the daemon's point says
                # it had no energy. Listed as such, never left out silently.
                self._records.append(RunRecord(
                    run=run, phase=phase, meter=meter, start_ns=start_ns, stop_ns=point.t_ns,
                    tags={k: v for k, v in point.tags.items()
                          if k not in ("run", "meter", "phase")},
                    end="stop", integrated_to_ns=point.t_ns, note=NO_READINGS_NOTE,
                    no_readings=True, gap_s=as_float(fields.get("gap_s"))))
            return
        aborted = fields.get("aborted") is True
        timeline = self._timeline
        span = timeline.run_on(meter) if phase is None else timeline.phase_on(meter)
        if span is not None and self._trackers[span].record is record:
            # The daemon closed it itself (max_run_s) without a stop marker.
            self._apply(Mark("abort" if aborted else "stop", run, phase, meter), point.t_ns,
                        "abort" if aborted else "daemon")
            record.end = "daemon"
        if fields.get("no_readings") is True:
            # The daemon's verdict stands (it is what its stop reply said), e.g. when
            # the meter's first reading after a silent run came after stop_wait_s: the
            # journal then brackets the run, the daemon had nothing to go on.
            record.no_readings = True
            record.result = None
            record.note = NO_READINGS_NOTE
        record.counter_energy_j = as_float(fields.get("counter_energy_j"))
        record.daemon_energy_j = as_float(fields.get("energy_j"))
        record.gap_s = as_float(fields.get("gap_s"))
        record.daemon_extrapolated_s = as_float(fields.get("extrapolated_s"))
        record.aborted = record.aborted or aborted
        record.clock_step = fields.get("clock_step") is True
        for key, value in point.tags.items():
            if key not in ("run", "meter", "phase"):
                record.tags.setdefault(key, value)

    def _find_record(self, run: str, phase: str | None, meter: str, start_ns: int | None,
                     t_ns: int) -> RunRecord | None:
        for record in reversed(self._records):
            if record.run != run or record.phase != phase or record.meter != meter:
                continue
            if start_ns is not None and record.start_ns != start_ns:
                continue
            if start_ns is None and record.start_ns > t_ns:
                continue
            return record
        return None

    # -- the end ---------------------------------------------------------------

    def finish(self) -> list[RunRecord]:
        for state in self.meters.values():
            for tr in state.active:
                record = tr.record
                if tr.stop_ns is not None:
                    # No reading at or after the stop: power held from the last one.
                    self._resolve(tr, tr.stop_ns)
                elif state.last_t is not None and state.last_t > record.start_ns:
                    self._resolve(tr, state.last_t)  # open: up to the last reading
                else:
                    record.no_readings = True
                    record.note = "no readings since the start"
            state.active = []
        notes = self.stats.notes
        for what, count in sorted(self._refused.items()):
            times = f" ({count} times)" if count > 1 else ""
            notes.append(f"{what}: no matching start in the journal{times}")
        if self._superseded:
            notes.append(f"{self._superseded} run(s) on a meter where a later start came "
                         "without a stop: left open (the daemon had lost them)")
        return sorted(self._records, key=lambda r: (r.start_ns, r.run, r.phase or "", r.meter))
