"""Energy completion: closed runs and phases waiting for the reading that
brackets their stop, and the stops waiting for them.

A ``stop`` cannot be answered at once: its energy needs the first reading at
or after the stop time (or, after ``stop_wait_ns``, the power held from the
last reading). Each closed interval is resolved then; a stop whose intervals
are all resolved becomes a :class:`Completion` with its ``wattd_run`` lines
and the typed reply. Intervals closed with no reply of their own (a phase
closed by the next phase or by its run's stop) give lines only. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wattd.energy import EnergyResult
from wattd.markers.events import Notice, RunClosed, SourceAddress, StopResult
from wattd.markers.intervals import Interval
from wattd.markers.points import run_line

# clock_step(start_boot_ns, stop_boot_ns) -> True if the realtime clock stepped in between.
ClockStepFn = Callable[[int, int], bool]

_EVER = 2**62


@dataclass(slots=True)
class Completion:
    """Lines to write durably, then (if any) the reply to send to ``sender``."""

    lines: list[str]
    event: RunClosed | None = None
    sender: SourceAddress | None = None
    notice: Notice | None = None


@dataclass(slots=True)
class _WaitingStop:
    name: str
    phase: str | None
    msg_id: str | None
    sender: SourceAddress | None
    intervals: list[Interval]
    deadline_boot: int
    results: dict[int, tuple[Interval, EnergyResult | None, float | None]] = field(
        default_factory=dict)


class StopBook:
    def __init__(self, stop_wait_ns: int, clock_step: ClockStepFn | None,
                 counters: dict[str, int]) -> None:
        self.stop_wait_ns = stop_wait_ns
        self.clock_step = clock_step
        self.counters = counters
        self._closing: dict[str, list[Interval]] = {}
        self._waiting: list[_WaitingStop] = []
        self._orphans: list[tuple[Interval, int]] = []  # closed intervals with no reply
        self._completions: list[Completion] = []

    def close(self, interval: Interval, t_rt: int, t_boot: int,
              stop_tags: dict[str, str]) -> Interval:
        interval.stop_rt_ns = t_rt
        interval.stop_boot_ns = max(t_boot, interval.start_boot_ns)
        interval.tags.update(stop_tags)
        self._closing.setdefault(interval.meter, []).append(interval)
        return interval

    def wait(self, name: str, phase: str | None, msg_id: str | None,
             sender: SourceAddress | None, intervals: list[Interval], recv_boot: int) -> None:
        """A stop answered once ``intervals`` are resolved."""
        self._waiting.append(_WaitingStop(name, phase, msg_id, sender, intervals,
                                          recv_boot + self.stop_wait_ns))

    def orphan(self, interval: Interval, recv_boot: int) -> None:
        """A closed interval no reply waits for: its line is written once resolved."""
        self._orphans.append((interval, recv_boot))

    def aborted_line(self, interval: Interval) -> str:
        """An aborted interval has no result: it waits for nothing."""
        closing = self._closing.get(interval.meter, [])
        if interval in closing:
            closing.remove(interval)
        return self._line(interval, None, None, aborted=True)

    def closing_on(self, meter: str) -> list[Interval]:
        return self._closing.get(meter, [])

    def add(self, completion: Completion) -> None:
        self._completions.append(completion)

    def take(self) -> list[Completion]:
        out, self._completions = self._completions, []
        return out

    @property
    def has_completions(self) -> bool:
        return bool(self._completions)

    @property
    def waiting(self) -> bool:
        return bool(self._waiting or self._orphans)

    @property
    def stops_waiting(self) -> int:
        return len(self._waiting)

    def answer_all(self) -> None:
        """Resolve everything now (power held from the last reading)."""
        self.resolve(None, _EVER)

    def resolve(self, meter: str | None, now_boot: int | None) -> None:
        """Resolve the intervals whose stop is covered by a reading (or, with
        ``now_boot``, whose wait expired); complete the stops they answer."""
        timed_out: set[int] = set()
        if now_boot is not None:
            for stop in self._waiting:
                if now_boot >= stop.deadline_boot:
                    timed_out.update(id(i) for i in stop.intervals)
            for interval, recv_boot in self._orphans:
                if now_boot >= recv_boot + self.stop_wait_ns:
                    timed_out.add(id(interval))
        names = [meter] if meter is not None else list(self._closing)
        done: dict[int, tuple[EnergyResult | None, float | None]] = {}
        for name in names:
            still: list[Interval] = []
            for interval in self._closing.get(name, []):
                if interval.covers_stop() or id(interval) in timed_out:
                    done[id(interval)] = self._finish(interval)
                else:
                    still.append(interval)
            self._closing[name] = still
        if not done:
            return
        remaining: list[_WaitingStop] = []
        for stop in self._waiting:
            for interval in stop.intervals:
                if id(interval) in done:
                    energy, counter = done[id(interval)]
                    stop.results[id(interval)] = (interval, energy, counter)
            if len(stop.results) == len(stop.intervals):
                self._complete(stop)
            else:
                remaining.append(stop)
        self._waiting = remaining
        orphans = []
        for interval, recv_boot in self._orphans:
            if id(interval) in done:
                energy, counter = done[id(interval)]
                self._completions.append(Completion([self._line(interval, energy, counter)]))
            else:
                orphans.append((interval, recv_boot))
        self._orphans = orphans

    def _finish(self, interval: Interval) -> tuple[EnergyResult | None, float | None]:
        """The interval's energy and counter energy; (None, None) when no
        reading measured it (no energy at all, never 0 J)."""
        assert interval.stop_boot_ns is not None
        energy = interval.energy(interval.stop_boot_ns)
        if energy is None:
            self.counters["stops_no_readings"] = self.counters.get("stops_no_readings", 0) + 1
            return None, None
        if energy.extrapolated_s > 0 and not interval.covers_stop():
            self.counters["stops_extrapolated"] += 1
        return energy, interval.counter.result(interval.stop_boot_ns)

    def _stepped(self, interval: Interval) -> bool:
        """Did the realtime clock step within the (closed) interval?"""
        if self.clock_step is None or interval.stop_boot_ns is None:
            return False
        return self.clock_step(interval.start_boot_ns, interval.stop_boot_ns)

    def _line(self, interval: Interval, energy: EnergyResult | None, counter: float | None, *,
              aborted: bool = False) -> str:
        return run_line(interval, energy, counter, clock_step=self._stepped(interval),
                        aborted=aborted)

    def _complete(self, stop: _WaitingStop) -> None:
        results = list(stop.results.values())
        lines = [self._line(interval, energy, counter) for interval, energy, counter in results]
        measured = [(i, e, c) for i, e, c in results if e is not None]
        missing = tuple(i.meter for i, e, _ in results if e is None)
        duration = max(0.0, *(i.duration_s(i.stop_boot_ns or i.start_boot_ns)
                              for i, _, _ in results))
        total_j: float | None = None
        max_w: float | None = None
        counter_j: float | None = None
        if not missing:  # a sum missing a meter was not measured: none at all
            total_j = sum((e.energy_j for _, e, _ in measured), 0.0)
            max_w = sum((e.max_w for _, e, _ in measured), 0.0)
            counters = [c for _, _, c in measured if c is not None]
            counter_j = sum(counters, 0.0) if counters else None
        per_meter = tuple((i.meter, e.energy_j) for i, e, _ in measured)
        self.counters["runs_closed"] += 1
        result = StopResult(
            energy_j=total_j, duration_s=duration,
            mean_w=None if total_j is None else total_j / duration if duration > 0 else 0.0,
            max_w=max_w,
            samples=sum(e.samples for _, e, _ in measured),
            counter_energy_j=counter_j,
            extrapolated_s=max((e.extrapolated_s for _, e, _ in measured), default=0.0),
            gap_s=max(i.gap_s(i.stop_boot_ns or i.start_boot_ns) for i, _, _ in results),
            per_meter_j=per_meter if len(results) > 1 else (),
            clock_step=any(self._stepped(i) for i, _, _ in results),
            no_readings=missing)
        closed = RunClosed(stop.name, stop.phase, result, msg_id=stop.msg_id)
        self._completions.append(Completion(lines, closed, stop.sender))
