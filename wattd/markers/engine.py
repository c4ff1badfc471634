"""The run engine: marker semantics of SPEC 2, pure (no sockets, no clock reads).

Messages go through :meth:`RunEngine.handle` with their receive times
(realtime and boot time) and come back as an :class:`Outcome`: lines to
write durably and a typed reply event (:mod:`wattd.markers.events`). Run and
phase state follows :mod:`wattd.markers.timeline`. A ``stop`` is answered
later, once its energy is known (:mod:`wattd.markers.closing`): from
:meth:`push` or :meth:`poll`, in :meth:`take_completions`.

Every decoded reading is pushed in (:meth:`push`) and fed at once to the
energy integrals of the open and closing runs; :meth:`tag` labels a reading
with the run open at its time (hold-back: :mod:`wattd.markers.tagger`).

Times: boundaries are realtime (what readings are stamped and tagged with);
energy is integrated on boot time, the boundary being converted with the
realtime - boottime offset at receive time, so an NTP step cannot bend it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from wattd.config import MarkersConfig
from wattd.energy import NS
from wattd.errors import MarkerInputError
from wattd.markers import fields as field_verbs
from wattd.markers.closing import ClockStepFn, Completion, StopBook
from wattd.markers.events import (
    Aborted,
    EventRecorded,
    Notice,
    PhaseOpened,
    Pong,
    Refused,
    ResultAccepted,
    RunOpened,
    SourceAddress,
    StatusAsked,
    Unanswered,
)
from wattd.markers.intervals import Interval
from wattd.markers.points import DAEMON_SOURCE, marker_line
from wattd.markers.protocol import MarkerMessage
from wattd.markers.timeline import MARKER, REPLACED, WITH_RUN, Mark, Span, Timeline
from wattd.readings import Reading

DEFAULT_PERIOD_NS = 110_000_000
HISTORY_READINGS = 4096


@dataclass(slots=True)
class EngineSettings:
    skew_limit_ns: int = 250_000_000
    holdback_ns: int | None = None  # None: skew limit + the meter's observed frame period
    stop_wait_ns: int = 5 * NS
    max_run_ns: int = 86_400 * NS
    history_ns: int = 2 * NS  # readings kept (beyond the skew limit) to bracket a start
    result_window_ns: int = 600 * NS  # a `result` may follow its run's stop this long

    @classmethod
    def from_config(cls, cfg: MarkersConfig) -> EngineSettings:
        holdback = cfg.holdback_ms
        return cls(skew_limit_ns=int(cfg.skew_limit_ms * 1e6),
                   holdback_ns=None if holdback is None else int(holdback * 1e6),
                   stop_wait_ns=int(cfg.stop_wait_s * NS), max_run_ns=int(cfg.max_run_s * NS),
                   result_window_ns=int(cfg.result_window_s * NS))


def gap_threshold_ns(period_ns: float) -> int:
    """Readings further apart than this count as missing (``gap_s``): five
    of the meter's usual periods, at least a second."""
    return max(NS, int(5 * period_ns))


@dataclass(slots=True)
class _Meter:
    name: str
    period_ns: float = DEFAULT_PERIOD_NS  # EMA of reading intervals (hold-back, gaps)
    period_learned: bool = False  # an interval was seen (it replaced the default)
    last_t_boot: int | None = None
    history: deque[Reading] = field(default_factory=lambda: deque(maxlen=HISTORY_READINGS))
    last_boundary_boot: int = 0  # boot time of the meter's latest boundary


@dataclass(slots=True)
class Outcome:
    """What :meth:`RunEngine.handle` decided: lines to write durably, then the
    reply event; ``pending`` True means the reply comes later as a Completion.
    ``notice`` is for the log."""

    lines: list[str]
    event: (Pong | RunOpened | PhaseOpened | EventRecorded | Aborted | Refused | StatusAsked
            | ResultAccepted | Unanswered | None)
    pending: bool = False
    notice: Notice | None = None


class RunEngine:
    def __init__(self, meters: Iterable[str], settings: EngineSettings | None = None, *,
                 clock_step: ClockStepFn | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.timeline = Timeline(keep_tags=True)
        self._meters: dict[str, _Meter] = {}
        self._intervals: dict[Span, Interval] = {}
        # realtime - boottime at the latest boundary (for a meter that joins later)
        self._offset_ns = 0
        for name in meters:
            self._meter(name)
        if not self._meters:
            raise ValueError("the run engine needs at least one meter")
        self.recent = field_verbs.RecentRuns(self.settings.result_window_ns)  # for a late `result`
        self.counters: dict[str, int] = {"accepted": 0, "refused": 0, "runs_closed": 0,
                                         "runs_aborted": 0, "auto_aborted": 0, "skew_warned": 0,
                                         "stops_extrapolated": 0, "stops_no_readings": 0}
        self._book = StopBook(self.settings.stop_wait_ns, clock_step, self.counters)
        self._notice: Notice | None = None
        self._readings_pushed = 0
        self._readings_tagged = 0

    def _meter(self, name: str) -> _Meter:
        meter = self._meters.get(name)
        if meter is None:
            meter = self._meters[name] = _Meter(name)
            for span in self.timeline.add_meter(name):
                self._open_at(span, span.start_ns - self._offset_ns)
        return meter


    @property
    def meters(self) -> list[str]:
        return list(self._meters)

    def period_ns(self, meter: str) -> float:
        found = self._meters.get(meter)
        return DEFAULT_PERIOD_NS if found is None else found.period_ns

    def push(self, reading: Reading) -> None:
        """Feed one reading to the energy of the open and closing runs."""
        self._readings_pushed += 1
        meter = self._meter(reading.meter)
        t = reading.t_boot_ns
        if meter.last_t_boot is not None and t > meter.last_t_boot:
            step = t - meter.last_t_boot
            if step < 5 * NS:
                if meter.period_learned:
                    meter.period_ns += (step - meter.period_ns) * 0.1
                else:  # the first interval replaces the default: a 1 s plug is not
                    meter.period_ns = float(step)  # a 110 ms chip (false gaps otherwise)
                    meter.period_learned = True
        meter.last_t_boot = t if meter.last_t_boot is None else max(t, meter.last_t_boot)
        hist = meter.history
        hist.append(reading)
        keep_from = t - self.settings.skew_limit_ns - self.settings.history_ns
        while len(hist) > 2 and hist[1].t_boot_ns < keep_from:
            hist.popleft()
        run, phase = self.timeline.run_on(meter.name), self.timeline.phase_on(meter.name)
        closing = self._book.closing_on(meter.name)
        if run is None and phase is None and not closing:
            return  # no run open on this meter: nothing to integrate
        gap_threshold = gap_threshold_ns(meter.period_ns)
        power, energy = reading.power_w, reading.energy_j
        for span in (run, phase):
            if span is not None:
                interval = self._intervals[span]
                interval.gap_threshold_ns = gap_threshold
                interval.add(t, power, energy)
        if closing:
            for interval in closing:
                interval.gap_threshold_ns = gap_threshold
                interval.add(t, power, energy)
            self._book.resolve(meter.name, None)

    def tag(self, reading: Reading) -> Reading:
        """Give ``reading`` the tags of the run (and phase) open at its time."""
        self._readings_tagged += 1
        tags = self.timeline.tags_at(reading.meter, reading.t_ns)
        if tags is not None:
            reading.tags = {**reading.tags, **tags}
        return reading

    def forget_tags_before(self, meter_name: str, oldest_t_ns: int | None) -> None:
        """Readings come in time order: tags that ended before the oldest
        reading still to be tagged (default: the meter's latest) can go."""
        meter = self._meters.get(meter_name)
        if oldest_t_ns is None:
            if meter is None or not meter.history:
                return
            oldest_t_ns = meter.history[-1].t_ns
        self.timeline.forget_tags_before(meter_name, oldest_t_ns)


    def _boundary(self, msg: MarkerMessage, recv_rt_ns: int) -> tuple[int, float | None]:
        """The boundary time (sender ts within the skew limit, else receive time)
        and the skew in ms (receive minus sender), when ts was given."""
        if msg.ts_ns is None:
            return recv_rt_ns, None
        skew_ns = recv_rt_ns - msg.ts_ns
        skew_ms = skew_ns / 1e6
        if abs(skew_ns) <= self.settings.skew_limit_ns:
            return msg.ts_ns, skew_ms
        self.counters["skew_warned"] += 1
        self._notice = Notice("marker_skew_beyond_limit", {
            "run": msg.name, "skew_ms": round(skew_ms, 1),
            "limit_ms": self.settings.skew_limit_ns / 1e6})
        return recv_rt_ns, skew_ms

    def handle(self, msg: MarkerMessage, sender: SourceAddress, recv_rt_ns: int,
               recv_boot_ns: int) -> Outcome:
        """Apply one authenticated, de-duplicated message. Refusals come back as
        a :class:`Refused` event and change nothing."""
        if msg.verb == "status":
            return Outcome([], StatusAsked(msg_id=msg.msg_id))
        self._notice = None
        try:
            outcome = self._handle(msg, sender, recv_rt_ns, recv_boot_ns)
        except MarkerInputError as exc:
            self.counters["refused"] += 1
            outcome = Outcome([], Refused(exc.reason, exc.detail, msg_id=msg.msg_id))
        else:
            self.counters["accepted"] += 1
        outcome.notice, self._notice = self._notice, None
        return outcome

    def _handle(self, msg: MarkerMessage, sender: SourceAddress, recv_rt: int,
                recv_boot: int) -> Outcome:
        if msg.verb == "ping":
            return Outcome([], Pong(recv_rt, msg_id=msg.msg_id))
        if msg.verb in field_verbs.FIELD_VERBS:  # result, sample (wattd.markers.fields)
            t_rt = self._boundary(msg, recv_rt)[0] if msg.verb == "sample" else recv_rt
            lines, event = field_verbs.handle(msg, sender.host, self.timeline, list(self._meters),
                                              self.recent, recv_boot, t_rt)
            return Outcome(lines, event)
        assert msg.name is not None
        name = msg.name
        t_rt, skew_ms = self._boundary(msg, recv_rt)
        offset = self._offset_ns = recv_rt - recv_boot
        mark = Mark(msg.verb, name, msg.phase, msg.meter, msg.tags)
        targets = self.timeline.targets(mark)
        if msg.verb == "event":
            return Outcome([self._marker_line(msg, sender, t_rt, skew_ms)],
                           EventRecorded(name, msg_id=msg.msg_id))
        t_rt = _after(t_rt, offset, (self._meters[n] for n in targets))
        t_boot = t_rt - offset
        lines = [self._marker_line(msg, sender, t_rt, skew_ms)]
        change = self.timeline.apply(mark, t_rt, targets)
        for target in targets:
            self._meters[target].last_boundary_boot = t_boot
        closing: list[Interval] = []
        aborted = msg.verb == "abort"
        for closed in change.closed:
            interval = self._intervals.pop(closed.span)
            stop_tags = {} if closed.cause == REPLACED else dict(msg.tags)
            self._book.close(interval, t_rt, t_boot, stop_tags)
            self._closed(interval, recv_boot)
            if closed.cause == MARKER:
                closing.append(interval)
            elif aborted and closed.cause == WITH_RUN:
                lines.append(self._book.aborted_line(interval))
            else:
                self._book.orphan(interval, recv_boot)
        for span in change.opened:
            self._open_at(span, t_boot)
        if msg.verb == "start":
            if msg.phase is None:
                return Outcome(lines, RunOpened(name, t_rt, skew_ms, msg_id=msg.msg_id))
            return Outcome(lines, PhaseOpened(name, msg.phase, t_rt, msg_id=msg.msg_id))
        if aborted:
            self.counters["runs_aborted"] += 1
            lines += [self._book.aborted_line(interval) for interval in closing]
            return Outcome(lines, Aborted(name, msg_id=msg.msg_id))
        self._book.wait(name, msg.phase, msg.msg_id, sender, closing, recv_boot)
        for target in targets:
            self._book.resolve(target, None)
        return Outcome(lines, None, pending=True)

    def _marker_line(self, msg: MarkerMessage, sender: SourceAddress, t_rt: int,
                     skew_ms: float | None) -> str:
        return marker_line(msg.verb, msg.name or "", sender.host, t_rt, phase=msg.phase,
                           meter=msg.meter, tags=msg.tags, skew_ms=skew_ms)

    def _open_at(self, span: Span, t_boot: int) -> Interval:
        """The energy of ``span`` from ``t_boot``, bracketed with the readings
        already seen."""
        meter = self._meters[span.meter]
        interval = Interval(meter=span.meter, run=span.run, phase=span.phase,
                            tags=dict(span.tags), start_rt_ns=span.start_ns,
                            start_boot_ns=t_boot)
        interval.gap_threshold_ns = gap_threshold_ns(meter.period_ns)
        hist = list(meter.history)
        first = 0
        for i, reading in enumerate(hist):
            if reading.t_boot_ns < t_boot:
                first = i
        for reading in hist[first:]:
            interval.add(reading.t_boot_ns, reading.power_w, reading.energy_j)
        self._intervals[span] = interval
        return interval

    def _closed(self, interval: Interval, closed_boot_ns: int) -> None:
        if interval.phase is None:
            self.recent.closed(field_verbs.interval_ref(interval), closed_boot_ns)


    def poll(self, now_rt_ns: int, now_boot_ns: int) -> None:
        """Expire stop waits (power held from the last reading) and abort runs
        older than ``max_run_s``."""
        if self._book.waiting:
            self._book.resolve(None, now_boot_ns)
        limit = self.settings.max_run_ns
        for run, _ in self.timeline.open_runs():
            if now_boot_ns - self._intervals[run].start_boot_ns > limit:
                self._auto_abort(run, now_rt_ns, now_boot_ns)

    def _auto_abort(self, run: Span, t_rt: int, t_boot: int) -> None:
        self.counters["auto_aborted"] += 1
        mark = Mark("abort", run.run, None, run.meter)
        change = self.timeline.apply(mark, t_rt, [run.meter])
        lines = [marker_line("abort", run.run, DAEMON_SOURCE, t_rt, meter=run.meter,
                             text="reason=max_run_s")]
        for closed in change.closed:
            interval = self._book.close(self._intervals.pop(closed.span), t_rt, t_boot, {})
            self._closed(interval, t_boot)
            lines.append(self._book.aborted_line(interval))
        meter = self._meters[run.meter]
        meter.last_boundary_boot = max(meter.last_boundary_boot, t_boot)
        notice = Notice("run_auto_aborted", {"run": run.run, "meter": run.meter,
                                             "max_run_s": self.settings.max_run_ns / NS})
        self._book.add(Completion(lines, notice=notice))

    def answer_pending(self) -> None:
        """Shutdown: answer every waiting stop now (power held from the last
        reading). Open runs stay open: they are reopened after the restart."""
        self._book.answer_all()

    def take_completions(self) -> list[Completion]:
        return self._book.take()

    @property
    def has_completions(self) -> bool:
        return self._book.has_completions

    @property
    def waiting(self) -> bool:
        """Stops are waiting for their bracketing reading (poll often)."""
        return self._book.waiting


    def reopen(self, meter_name: str, run: str, tags: dict[str, str], start_rt_ns: int,
               offset_ns: int, phase: tuple[str, int, dict[str, str]] | None = None) -> None:
        """Reopen a run found open in the journal (boundary realtime converted
        with the current realtime - boottime offset)."""
        if meter_name not in self._meters or self.timeline.run_on(meter_name) is not None:
            return
        meter = self._meters[meter_name]
        marks = [(Mark("start", run, None, meter_name, tags), start_rt_ns)]
        if phase is not None:
            marks.append((Mark("start", run, phase[0], meter_name, phase[2]), phase[1]))
        for mark, t_rt in marks:
            for span in self.timeline.apply(mark, t_rt, [meter_name]).opened:
                self._open_at(span, t_rt - offset_ns)
            meter.last_boundary_boot = max(meter.last_boundary_boot, t_rt - offset_ns)

    def seed(self, meter_name: str, t_boot_ns: int, power_w: float | None,
             counter_j: float | None) -> None:
        """Feed a reading from the journal (restart) to the open intervals."""
        for span in (self.timeline.run_on(meter_name), self.timeline.phase_on(meter_name)):
            if span is not None:
                self._intervals[span].add(t_boot_ns, power_w, counter_j)

    def open_runs(self, now_boot_ns: int | None = None) -> list[dict[str, object]]:
        out = []
        for run, phase in self.timeline.open_runs():
            item: dict[str, object] = {"run": run.run, "meter": run.meter,
                                       "start_ns": run.start_ns,
                                       "tags": self._intervals[run].tags}
            if phase is not None:
                item["phase"] = phase.phase
            if now_boot_ns is not None:
                age_ns = now_boot_ns - self._intervals[run].start_boot_ns
                item["age_s"] = round(age_ns / NS, 3)
            out.append(item)
        return out

    def status(self) -> dict[str, object]:
        return {"open_runs": self.open_runs(), "pending_stops": self._book.stops_waiting,
                "held_readings": self._readings_pushed - self._readings_tagged,
                **self.counters}


def _after(t_rt: int, offset: int, meters: Iterable[_Meter]) -> int:
    """A boundary never goes before the previous boundary on its meters (a
    back-dated start cannot overlap the run that just stopped): the one time
    used for the intervals, the reply and the ``wattd_marker`` point. Compared
    on boot time (``offset`` = realtime - boottime now): after a backward step
    of the realtime clock, a realtime comparison would push the boundary into
    the future by the size of the step (and the run's energy with it)."""
    floor_boot = max((m.last_boundary_boot for m in meters), default=0)
    return max(t_rt, floor_boot + offset)
