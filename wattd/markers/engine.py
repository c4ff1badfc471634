"""The run engine: marker semantics of SPEC 2, pure (no sockets, no clock reads).

It is the pipeline's :class:`~wattd.daemon.pipeline.ReadingStage`: every
decoded reading is pushed in (and fed at once to the energy integrals of the
open and closing runs), held back ``holdback`` so a marker back-dated by up
to ``skew_limit_ms`` still tags it, and released tagged by :meth:`pop_ready`.

Messages go through :meth:`handle` with their receive times (realtime and
boot time). A ``stop`` cannot be answered at once: its energy needs the first
reading at or after the stop time. Such replies come out later, from
:meth:`push` or :meth:`poll`, in :meth:`take_completions`.

Times: boundaries are realtime (what readings are stamped and tagged with);
energy is integrated on boot time, the boundary being converted with the
realtime - boottime offset at receive time, so an NTP step cannot bend it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from wattd.energy import NS, EnergyResult
from wattd.errors import MarkerInputError
from wattd.lineprotocol import FieldValue, format_line
from wattd.markers import results as run_results
from wattd.markers import samples, wire
from wattd.markers.intervals import Interval
from wattd.markers.protocol import MarkerMessage
from wattd.readings import Reading

MARKER_MEASUREMENT = "wattd_marker"
RUN_MEASUREMENT = "wattd_run"
DAEMON_SOURCE = "wattd"

# clock_step(start_boot_ns, stop_boot_ns) -> True if the realtime clock stepped
# in between (provided by the clock-health component; issue 5).
ClockStepFn = Callable[[int, int], bool]


@dataclass(slots=True)
class EngineSettings:
    skew_limit_ns: int = 250_000_000
    holdback_ns: int | None = None  # None: skew limit + the meter's observed frame period
    stop_wait_ns: int = 5 * NS
    max_run_ns: int = 86_400 * NS
    history_ns: int = 2 * NS  # readings kept (beyond the skew limit) to bracket a start
    result_window_ns: int = 600 * NS  # a `result` may follow its run's stop this long

    @classmethod
    def from_config(cls, cfg: Any) -> EngineSettings:
        """From a :class:`wattd.config.MarkersConfig`."""
        holdback = getattr(cfg, "holdback_ms", None)
        return cls(skew_limit_ns=int(cfg.skew_limit_ms * 1e6),
                   holdback_ns=None if holdback is None else int(holdback * 1e6),
                   stop_wait_ns=int(cfg.stop_wait_s * NS), max_run_ns=int(cfg.max_run_s * NS),
                   result_window_ns=int(getattr(cfg, "result_window_s", 600.0) * NS))


DEFAULT_PERIOD_NS = 110_000_000


def gap_threshold_ns(period_ns: float) -> int:
    """Readings further apart than this count as missing (``gap_s``): five
    of the meter's usual periods, at least a second."""
    return max(NS, int(5 * period_ns))


@dataclass(slots=True)
class _Meter:
    name: str
    period_ns: float = DEFAULT_PERIOD_NS  # EMA of reading intervals (hold-back, gaps)
    last_t_boot: int | None = None
    history: deque[Reading] = field(default_factory=lambda: deque(maxlen=4096))
    held: deque[Reading] = field(default_factory=deque)
    # Tag spans, contiguous in realtime: (start_rt, stop_rt or None, tags).
    spans: list[tuple[int, int | None, dict[str, str]]] = field(default_factory=list)
    run: Interval | None = None
    phase: Interval | None = None
    closing: list[Interval] = field(default_factory=list)
    last_boundary_boot: int = 0  # boot time of the meter's latest boundary


@dataclass(slots=True)
class Completion:
    """Lines to write durably, then (if any) a reply to send to ``context``."""

    lines: list[str]
    reply: bytes | None = None
    context: Any = None


@dataclass(slots=True)
class Outcome:
    """What :meth:`RunEngine.handle` decided: lines to write durably, then the
    reply; ``pending`` True means the reply comes later as a Completion."""

    lines: list[str]
    reply: bytes | None
    pending: bool = False


@dataclass(slots=True)
class _PendingReply:
    verb: str
    name: str
    phase: str | None
    msg_id: str | None
    context: Any
    intervals: list[Interval]
    deadline_boot: int
    results: dict[int, tuple[Interval, EnergyResult, float | None]] = field(default_factory=dict)


class RunEngine:
    def __init__(self, meters: Iterable[str], settings: EngineSettings | None = None, *,
                 clock_step: ClockStepFn | None = None,
                 warn: Callable[..., None] | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.meters: dict[str, _Meter] = {m: _Meter(m) for m in meters}
        if not self.meters:
            raise ValueError("the run engine needs at least one meter")
        self.clock_step = clock_step
        self._warn = warn or (lambda event, **kw: None)
        self._pending: list[_PendingReply] = []
        self._orphans: list[tuple[Interval, int]] = []  # closing intervals with no reply
        self._completions: list[Completion] = []
        self.recent = run_results.RecentRuns(self.settings.result_window_ns)
        self.counters: dict[str, int] = {"accepted": 0, "refused": 0, "runs_closed": 0,
                                         "runs_aborted": 0, "auto_aborted": 0, "skew_warned": 0,
                                         "stops_extrapolated": 0}

    # ---------------------------------------------------------------- readings

    def holdback_ns(self, meter: _Meter) -> int:
        if self.settings.holdback_ns is not None:
            return self.settings.holdback_ns
        return self.settings.skew_limit_ns + int(meter.period_ns)

    def push(self, reading: Reading) -> None:
        meter = self.meters.get(reading.meter)
        if meter is None:
            meter = self.meters[reading.meter] = _Meter(reading.meter)
        t = reading.t_boot_ns
        if meter.last_t_boot is not None and t > meter.last_t_boot:
            step = t - meter.last_t_boot
            if step < 5 * NS:
                meter.period_ns += (step - meter.period_ns) * 0.1
        meter.last_t_boot = t if meter.last_t_boot is None else max(t, meter.last_t_boot)
        meter.held.append(reading)
        hist = meter.history
        hist.append(reading)
        keep_from = t - self.settings.skew_limit_ns - self.settings.history_ns
        while len(hist) > 2 and hist[1].t_boot_ns < keep_from:
            hist.popleft()
        run, phase, closing = meter.run, meter.phase, meter.closing
        if run is None and phase is None and not closing:
            return  # no run open on this meter: nothing to integrate
        gap_threshold = gap_threshold_ns(meter.period_ns)
        power, energy = reading.power_w, reading.energy_j
        if run is not None:
            run.gap_threshold_ns = gap_threshold
            run.add(t, power, energy)
        if phase is not None:
            phase.gap_threshold_ns = gap_threshold
            phase.add(t, power, energy)
        if closing:
            for interval in closing:
                interval.gap_threshold_ns = gap_threshold
                interval.add(t, power, energy)
            self._resolve(meter, None)

    def pop_ready(self, now_boot_ns: int) -> list[Reading]:
        out: list[Reading] = []
        for meter in self.meters.values():
            held = meter.held
            limit = now_boot_ns - self.holdback_ns(meter)
            while held and held[0].t_boot_ns <= limit:
                out.append(self._tag(meter, held.popleft()))
            self._prune_spans(meter)
        return out

    def flush_all(self) -> list[Reading]:
        out: list[Reading] = []
        for meter in self.meters.values():
            while meter.held:
                out.append(self._tag(meter, meter.held.popleft()))
        return out

    def _tag(self, meter: _Meter, reading: Reading) -> Reading:
        t = reading.t_ns
        for start, stop, tags in meter.spans:
            if start <= t and (stop is None or t < stop):
                reading.tags = {**reading.tags, **tags}
                break
        return reading

    def _prune_spans(self, meter: _Meter) -> None:
        # Readings come in time order: a span that ended before the oldest
        # reading still to be tagged can go.
        if meter.held:
            oldest = meter.held[0].t_ns
        elif meter.history:
            oldest = meter.history[-1].t_ns
        else:
            return
        spans = meter.spans
        while spans and spans[0][1] is not None and spans[0][1] <= oldest:
            spans.pop(0)

    # ---------------------------------------------------------------- messages

    def boundary(self, msg: MarkerMessage, recv_rt_ns: int) -> tuple[int, float | None]:
        """The boundary time (sender ts within the skew limit, else receive time)
        and the skew in ms (receive minus sender), when ts was given."""
        if msg.ts_ns is None:
            return recv_rt_ns, None
        skew_ns = recv_rt_ns - msg.ts_ns
        skew_ms = skew_ns / 1e6
        if abs(skew_ns) <= self.settings.skew_limit_ns:
            return msg.ts_ns, skew_ms
        self.counters["skew_warned"] += 1
        self._warn("marker_skew_beyond_limit", run=msg.name, skew_ms=round(skew_ms, 1),
                   limit_ms=self.settings.skew_limit_ns / 1e6)
        return recv_rt_ns, skew_ms

    def handle(self, msg: MarkerMessage, source: str, recv_rt_ns: int, recv_boot_ns: int,
               context: Any = None) -> Outcome:
        """Apply one authenticated, de-duplicated message. Refusals come back as
        an ``error`` reply and change nothing."""
        try:
            outcome = self._handle(msg, source, recv_rt_ns, recv_boot_ns, context)
        except MarkerInputError as exc:
            self.counters["refused"] += 1
            return Outcome([], wire.format_error(exc.reason, exc.detail, msg.msg_id))
        self.counters["accepted"] += 1
        return outcome

    def _targets(self, msg: MarkerMessage) -> list[_Meter]:
        if msg.meter is None:
            return list(self.meters.values())
        meter = self.meters.get(msg.meter)
        if meter is None:
            raise MarkerInputError("unknown", f"no meter {msg.meter!r}")
        return [meter]

    def _handle(self, msg: MarkerMessage, source: str, recv_rt: int, recv_boot: int,
                context: Any) -> Outcome:
        verb = msg.verb
        if verb == "ping":
            return Outcome([], wire.format_ok("ping", None, [("t_ns", recv_rt)], msg.msg_id))
        if verb in wire.FIELD_VERBS:
            return self._handle_fields(msg, source, recv_rt, recv_boot)
        assert msg.name is not None
        name = msg.name
        t_rt, skew_ms = self.boundary(msg, recv_rt)
        offset = recv_rt - recv_boot
        if verb == "event":
            self._targets(msg)
            return Outcome([self._marker_line(msg, source, t_rt, skew_ms)],
                           wire.format_ok("event", name, [], msg.msg_id))
        if verb == "start":
            if msg.phase is None:
                return self._start_run(msg, source, t_rt, skew_ms, offset)
            return self._start_phase(msg, source, t_rt, skew_ms, offset, recv_boot)
        # stop / abort
        meters = self._open_on(msg)
        t_rt = _after(t_rt, offset, meters)
        if msg.phase is not None:
            for meter in meters:
                if meter.phase is None or meter.phase.phase != msg.phase:
                    raise MarkerInputError("unknown", f"phase {msg.phase!r} of run {name!r} "
                                           f"is not open on meter {meter.name!r}")
        aborted = verb == "abort"
        closing: list[Interval] = []
        lines = [self._marker_line(msg, source, t_rt, skew_ms)]
        for meter in meters:
            t = t_rt
            t_boot = t - offset
            meter.last_boundary_boot = t_boot
            if msg.phase is not None:
                assert meter.phase is not None
                closing.append(self._close(meter, meter.phase, t, t_boot, msg.tags))
                meter.phase = None
                self._set_span(meter, t, self._run_tags(meter.run))
                continue
            run_interval = meter.run
            assert run_interval is not None
            if meter.phase is not None:
                phase_interval = self._close(meter, meter.phase, t, t_boot, msg.tags)
                meter.phase = None
                if aborted:
                    lines.append(self._write_aborted(phase_interval))
                else:
                    self._orphans.append((phase_interval, recv_boot))
            closing.append(self._close(meter, run_interval, t, t_boot, msg.tags))
            self._closed_run(run_interval, recv_boot)
            meter.run = None
            self._set_span(meter, t, None)
        if aborted:
            self.counters["runs_aborted"] += 1
            for interval in closing:
                lines.append(self._write_aborted(interval))
            return Outcome(lines, wire.format_ok(verb, name, [], msg.msg_id))
        self._pending.append(_PendingReply(verb, name, msg.phase, msg.msg_id, context,
                                           closing, recv_boot + self.settings.stop_wait_ns))
        for meter in meters:
            self._resolve(meter, None)
        return Outcome(lines, None, pending=True)

    def _open_on(self, msg: MarkerMessage) -> list[_Meter]:
        name = msg.name
        if msg.meter is not None:
            meters = self._targets(msg)
            if meters[0].run is None or meters[0].run.run != name:
                raise MarkerInputError("unknown", f"run {name!r} is not open on meter "
                                       f"{msg.meter!r}")
            return meters
        meters = [m for m in self.meters.values() if m.run is not None and m.run.run == name]
        if not meters:
            raise MarkerInputError("unknown", f"run {name!r} is not open")
        return meters

    def _start_run(self, msg: MarkerMessage, source: str, t_rt: int, skew_ms: float | None,
                   offset: int) -> Outcome:
        assert msg.name is not None
        targets = self._targets(msg)
        busy = [m for m in targets if m.run is not None]
        if busy:
            names = ", ".join(f"{m.name} has run {m.run.run}" for m in busy if m.run)
            raise MarkerInputError("busy", names)
        t_rt = _after(t_rt, offset, targets)
        for meter in targets:
            t = t_rt
            meter.last_boundary_boot = t - offset
            meter.run = self._open(meter, msg.name, None, dict(msg.tags), t, t - offset)
            self._set_span(meter, t, self._run_tags(meter.run))
        fields: list[tuple[str, object]] = [("start_ns", t_rt)]
        if skew_ms is not None:
            fields.append(("skew_ms", round(skew_ms, 3)))
        return Outcome([self._marker_line(msg, source, t_rt, skew_ms)],
                       wire.format_ok("start", msg.name, fields, msg.msg_id))

    def _start_phase(self, msg: MarkerMessage, source: str, t_rt: int, skew_ms: float | None,
                     offset: int, recv_boot: int) -> Outcome:
        assert msg.name is not None
        assert msg.phase is not None
        meters = self._open_on(msg)
        t_rt = _after(t_rt, offset, meters)
        for meter in meters:
            run_interval = meter.run
            assert run_interval is not None
            t = t_rt
            meter.last_boundary_boot = t - offset
            if meter.phase is not None:
                closed = self._close(meter, meter.phase, t, t - offset, {})
                self._orphans.append((closed, recv_boot))
            tags = {**run_interval.tags, **msg.tags}
            meter.phase = self._open(meter, msg.name, msg.phase, tags, t, t - offset)
            self._set_span(meter, t, {**self._run_tags(run_interval), "phase": msg.phase,
                                      **msg.tags})
        return Outcome([self._marker_line(msg, source, t_rt, skew_ms)],
                       wire.format_ok("start", msg.name, [("start_ns", t_rt)], msg.msg_id))

    @staticmethod
    def _run_tags(run: Interval | None) -> dict[str, str]:
        if run is None:
            return {}
        return {**run.tags, "run": run.run}

    def _set_span(self, meter: _Meter, t_rt: int, tags: dict[str, str] | None) -> None:
        spans = meter.spans
        if spans and spans[-1][1] is None:
            start, _, old = spans[-1]
            spans[-1] = (start, t_rt, old)
        if tags is not None:
            spans.append((t_rt, None, tags))

    def _open(self, meter: _Meter, run: str, phase: str | None, tags: dict[str, str],
              t_rt: int, t_boot: int) -> Interval:
        interval = Interval(meter=meter.name, run=run, phase=phase, tags=tags,
                            start_rt_ns=t_rt, start_boot_ns=t_boot)
        interval.gap_threshold_ns = gap_threshold_ns(meter.period_ns)
        # Bracket a start in the past with the readings already seen.
        hist = list(meter.history)
        first = 0
        for i, reading in enumerate(hist):
            if reading.t_boot_ns < t_boot:
                first = i
        for reading in hist[first:]:
            interval.add(reading.t_boot_ns, reading.power_w, reading.energy_j)
        return interval

    def _close(self, meter: _Meter, interval: Interval, t_rt: int, t_boot: int,
               stop_tags: dict[str, str]) -> Interval:
        interval.stop_rt_ns = t_rt
        interval.stop_boot_ns = max(t_boot, interval.start_boot_ns)
        interval.tags.update(stop_tags)
        meter.closing.append(interval)
        return interval

    # ---------------------------------------------------------------- results

    def _resolve(self, meter: _Meter | None, now_boot: int | None) -> None:
        """Close intervals whose stop is covered by a reading (or, with
        ``now_boot``, whose wait expired); emit completed replies."""
        timed_out: set[int] = set()
        if now_boot is not None:
            for pend in self._pending:
                if now_boot >= pend.deadline_boot:
                    timed_out.update(id(i) for i in pend.intervals)
            for interval, recv_boot in self._orphans:
                if now_boot >= recv_boot + self.settings.stop_wait_ns:
                    timed_out.add(id(interval))
        meters = [meter] if meter is not None else list(self.meters.values())
        done: dict[int, tuple[EnergyResult, float | None]] = {}
        for m in meters:
            still: list[Interval] = []
            for interval in m.closing:
                if interval.covers_stop() or id(interval) in timed_out:
                    done[id(interval)] = self._finish(interval)
                else:
                    still.append(interval)
            m.closing = still
        if not done:
            return
        for pend in self._pending:
            for interval in pend.intervals:
                if id(interval) in done:
                    energy, counter = done[id(interval)]
                    pend.results[id(interval)] = (interval, energy, counter)
        remaining: list[_PendingReply] = []
        for pend in self._pending:
            if len(pend.results) == len(pend.intervals):
                self._complete(pend)
            else:
                remaining.append(pend)
        self._pending = remaining
        orphans = []
        for interval, recv_boot in self._orphans:
            if id(interval) in done:
                energy, counter = done[id(interval)]
                self._completions.append(Completion([self._run_line(interval, energy, counter)]))
            else:
                orphans.append((interval, recv_boot))
        self._orphans = orphans

    def _finish(self, interval: Interval) -> tuple[EnergyResult, float | None]:
        assert interval.stop_boot_ns is not None
        energy = interval.energy(interval.stop_boot_ns)
        if energy.extrapolated_s > 0 and not interval.covers_stop():
            self.counters["stops_extrapolated"] += 1
        return energy, interval.counter.result(interval.stop_boot_ns)

    def _complete(self, pend: _PendingReply) -> None:
        lines: list[str] = []
        total_e = 0.0
        total_counter: float | None = None
        duration = 0.0
        max_w = 0.0
        samples = 0
        per_meter: list[tuple[str, float]] = []
        for interval, energy, counter in pend.results.values():
            lines.append(self._run_line(interval, energy, counter))
            total_e += energy.energy_j
            duration = max(duration, energy.duration_s)
            max_w += energy.max_w
            samples += energy.samples
            per_meter.append((interval.meter, energy.energy_j))
            if counter is not None:
                total_counter = (total_counter or 0.0) + counter
        self.counters["runs_closed"] += 1
        mean_w = total_e / duration if duration > 0 else 0.0
        fields: list[tuple[str, object]] = [
            ("energy_j", total_e), ("duration_s", duration), ("mean_w", mean_w),
            ("max_w", max_w), ("samples", samples)]
        if total_counter is not None:
            fields.append(("counter_energy_j", total_counter))
        extrapolated = max(e.extrapolated_s for _, e, _ in pend.results.values())
        if extrapolated > 0:
            fields.append(("extrapolated_s", extrapolated))
        gap = max(i.gap_s(i.stop_boot_ns or i.start_boot_ns) for i, _, _ in pend.results.values())
        if gap > 0:
            fields.append(("gap_s", gap))
        if len(per_meter) > 1:
            fields += [(f"energy_j.{m}", e) for m, e in per_meter]
        if self.clock_step is not None and any(
                self.clock_step(i.start_boot_ns, i.stop_boot_ns or i.start_boot_ns)
                for i, _, _ in pend.results.values()):
            # as on the wattd_run points: the user sees it where they read the joules
            fields.append(("clock_step", "true"))
        if pend.phase is not None:
            fields.insert(0, ("phase", pend.phase))
        reply = wire.format_ok(pend.verb, pend.name, fields, pend.msg_id)
        self._completions.append(Completion(lines, reply, pend.context))

    def _run_line(self, interval: Interval, energy: EnergyResult, counter: float | None,
                  aborted: bool = False) -> str:
        stop_boot = interval.stop_boot_ns if interval.stop_boot_ns is not None else 0
        tags = {**interval.tags, "run": interval.run, "meter": interval.meter}
        if interval.phase is not None:
            tags["phase"] = interval.phase
        fields: dict[str, FieldValue] = {}
        if not aborted:
            fields.update(energy_j=energy.energy_j, duration_s=energy.duration_s,
                          mean_w=energy.mean_w, min_w=energy.min_w, max_w=energy.max_w,
                          samples=energy.samples)
        else:
            fields["duration_s"] = max(0, stop_boot - interval.start_boot_ns) / NS
        fields["start_ns"] = interval.start_rt_ns
        if counter is not None and not aborted:
            fields["counter_energy_j"] = float(counter)
        gap = interval.gap_s(stop_boot)
        if gap > 0:
            fields["gap_s"] = gap
        if energy.extrapolated_s > 0 and not aborted:
            fields["extrapolated_s"] = energy.extrapolated_s
        if aborted:
            fields["aborted"] = True
        if self.clock_step is not None and self.clock_step(interval.start_boot_ns, stop_boot):
            fields["clock_step"] = True
        stop_rt = interval.stop_rt_ns if interval.stop_rt_ns is not None else interval.start_rt_ns
        return format_line(RUN_MEASUREMENT, tags, fields, stop_rt)

    def _write_aborted(self, interval: Interval) -> str:
        # An aborted interval has no result: drop it from the closing lists.
        for meter in self.meters.values():
            if interval in meter.closing:
                meter.closing.remove(interval)
        empty = EnergyResult(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)
        return self._run_line(interval, empty, None, aborted=True)

    def _marker_line(self, msg: MarkerMessage, source: str, t_rt: int,
                     skew_ms: float | None) -> str:
        tags = {"run": msg.name or "", "verb": msg.verb, "source": source}
        if msg.phase is not None:
            tags["phase"] = msg.phase
        if msg.meter is not None:
            tags["meter"] = msg.meter
        fields: dict[str, FieldValue] = {"text": msg.text()}
        if skew_ms is not None:
            fields["skew_ms"] = float(skew_ms)
        return format_line(MARKER_MEASUREMENT, tags, fields, t_rt)

    # ---------------------------------------------------------------- result, sample

    def _handle_fields(self, msg: MarkerMessage, source: str, recv_rt: int,
                       recv_boot: int) -> Outcome:
        """``result`` (wattd.markers.results) and ``sample`` (wattd.markers.samples)."""
        assert msg.name is not None
        if msg.verb == "sample":
            samples.require_ts(msg)
            t_rt, _ = self.boundary(msg, recv_rt)
            spans = [m.spans for m in self._targets(msg)]
            line = samples.sample_line(msg, t_rt, samples.run_tags_at(t_rt, spans))
            return Outcome([line], b"")  # b"": handled, nothing to send
        meters = [m for m in self._targets(msg) if m.run is not None and m.run.run == msg.name]
        if meters and meters[0].run is not None:
            run = meters[0].run
            ref = run_results.RunRef(run.run, run.start_rt_ns, dict(run.tags))
        else:
            found = self.recent.find(msg.name, recv_boot)
            if found is None:
                raise MarkerInputError("unknown", f"run {msg.name!r} is neither open nor closed "
                                       "within markers.result_window_s")
            ref = found
        return Outcome(run_results.result_lines(msg, source, ref),
                       wire.format_ok("result", msg.name, [], msg.msg_id))

    def _closed_run(self, run: Interval, closed_boot_ns: int) -> None:
        self.recent.closed(run_results.RunRef(run.run, run.start_rt_ns, dict(run.tags)),
                           closed_boot_ns)

    # ---------------------------------------------------------------- time passes

    def poll(self, now_rt_ns: int, now_boot_ns: int) -> None:
        """Expire stop waits (power held from the last reading) and abort runs
        older than ``max_run_s``."""
        if self._pending or self._orphans:
            self._resolve(None, now_boot_ns)
        limit = self.settings.max_run_ns
        for meter in self.meters.values():
            run = meter.run
            if run is None or now_boot_ns - run.start_boot_ns <= limit:
                continue
            self.counters["auto_aborted"] += 1
            self._warn("run_auto_aborted", run=run.run, meter=meter.name,
                       max_run_s=limit / NS)
            t_rt = now_rt_ns
            t_boot = now_boot_ns
            lines = []
            if meter.phase is not None:
                lines.append(self._write_aborted(self._close(meter, meter.phase, t_rt, t_boot,
                                                             {})))
                meter.phase = None
            lines.append(self._write_aborted(self._close(meter, run, t_rt, t_boot, {})))
            self._closed_run(run, now_boot_ns)
            meter.run = None
            meter.last_boundary_boot = max(meter.last_boundary_boot, t_boot)
            self._set_span(meter, t_rt, None)
            tags = {"run": run.run, "verb": "abort", "source": DAEMON_SOURCE,
                    "meter": meter.name}
            lines.insert(0, format_line(MARKER_MEASUREMENT, tags,
                                        {"text": "reason=max_run_s"}, t_rt))
            self._completions.append(Completion(lines))

    def answer_pending(self) -> None:
        """Shutdown: answer every waiting stop now (power held from the last
        reading). Open runs stay open: they are reopened after the restart."""
        self._resolve(None, 2**62)

    def take_completions(self) -> list[Completion]:
        out, self._completions = self._completions, []
        return out

    @property
    def has_completions(self) -> bool:
        return bool(self._completions)

    @property
    def waiting(self) -> bool:
        """Stops are waiting for their bracketing reading (poll often)."""
        return bool(self._pending or self._orphans)

    # ---------------------------------------------------------------- restart, status

    def reopen(self, meter_name: str, run: str, tags: dict[str, str], start_rt_ns: int,
               offset_ns: int, phase: tuple[str, int, dict[str, str]] | None = None) -> None:
        """Reopen a run found open in the journal (boundary realtime converted
        with the current realtime - boottime offset)."""
        meter = self.meters.get(meter_name)
        if meter is None or meter.run is not None:
            return
        meter.run = self._open(meter, run, None, dict(tags), start_rt_ns,
                               start_rt_ns - offset_ns)
        meter.last_boundary_boot = start_rt_ns - offset_ns
        self._set_span(meter, start_rt_ns, self._run_tags(meter.run))
        if phase is not None:
            phase_name, phase_rt, phase_tags = phase
            merged = {**tags, **phase_tags}
            meter.phase = self._open(meter, run, phase_name, merged, phase_rt,
                                     phase_rt - offset_ns)
            meter.last_boundary_boot = max(start_rt_ns, phase_rt) - offset_ns
            self._set_span(meter, phase_rt, {**self._run_tags(meter.run), "phase": phase_name,
                                             **phase_tags})

    def seed(self, meter_name: str, t_boot_ns: int, power_w: float | None,
             counter_j: float | None) -> None:
        """Feed a reading from the journal (restart) to the open intervals."""
        meter = self.meters.get(meter_name)
        if meter is None:
            return
        for interval in (meter.run, meter.phase):
            if interval is not None:
                interval.add(t_boot_ns, power_w, counter_j)

    def open_runs(self, now_boot_ns: int | None = None) -> list[dict[str, Any]]:
        out = []
        for meter in self.meters.values():
            if meter.run is None:
                continue
            item: dict[str, Any] = {"run": meter.run.run, "meter": meter.name,
                                    "start_ns": meter.run.start_rt_ns, "tags": meter.run.tags}
            if meter.phase is not None:
                item["phase"] = meter.phase.phase
            if now_boot_ns is not None:
                item["age_s"] = round((now_boot_ns - meter.run.start_boot_ns) / NS, 3)
            out.append(item)
        return out

    def status(self) -> dict[str, Any]:
        return {"open_runs": self.open_runs(), "pending_stops": len(self._pending),
                "held_readings": sum(len(m.held) for m in self.meters.values()),
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
