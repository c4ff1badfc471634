"""One run or phase on one meter: its energy (online, boot-time clock), its
hardware-counter energy and its reading gaps. Pure; fed readings in order."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from wattd.energy import NS, EnergyResult, IntervalIntegrator

HISTORY = 1024  # readings kept for a back-dated stop (seconds of readings at 20 Hz)


def _lerp(t0: int, v0: float, t1: int, v1: float, t: int) -> float:
    if t1 == t0:
        return v1
    return v0 + (v1 - v0) * ((t - t0) / (t1 - t0))


class CounterSpan:
    """Energy from the meter's cumulative counter (``Reading.energy_j``) over
    [start, stop], interpolating the counter linearly at both boundaries. A
    counter that goes backwards (decoder restarted) is taken as restarted
    from zero."""

    __slots__ = ("_before", "_hist", "start_ns")

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self._before: tuple[int, float] | None = None  # last (t, counter) with t < start
        # (t, counter value, energy accumulated from start to t)
        self._hist: deque[tuple[int, float, float]] = deque(maxlen=HISTORY)

    @property
    def known(self) -> bool:
        return bool(self._hist) or self._before is not None

    def add(self, t_ns: int, counter_j: float) -> None:
        if t_ns < self.start_ns:
            self._before = (t_ns, counter_j)
            return
        if not self._hist:
            acc = 0.0
            if self._before is not None:
                b_t, b_e = self._before
                step = counter_j - b_e if counter_j >= b_e else counter_j
                acc = step * ((t_ns - self.start_ns) / (t_ns - b_t)) if t_ns > b_t else 0.0
            self._hist.append((t_ns, counter_j, acc))
            return
        p_t, p_e, p_acc = self._hist[-1]
        if t_ns < p_t:
            return
        step = counter_j - p_e if counter_j >= p_e else counter_j
        self._hist.append((t_ns, counter_j, p_acc + step))

    def result(self, stop_ns: int) -> float | None:
        hist = self._hist
        idx = len(hist) - 1
        while idx >= 0 and hist[idx][0] > stop_ns:
            idx -= 1
        if idx < 0:
            # No counter reading inside [start, stop]: bracket both boundaries.
            if self._before is None or not hist:
                return None if not self.known else 0.0
            b_t, b_e = self._before
            n_t, n_e, _ = hist[0]
            step = n_e - b_e if n_e >= b_e else n_e
            if n_t <= b_t:
                return 0.0
            return step * ((stop_ns - self.start_ns) / (n_t - b_t))
        t, _, acc = hist[idx]
        if idx + 1 < len(hist):
            n_t, n_e, n_acc = hist[idx + 1]
            return _lerp(t, acc, n_t, n_acc, stop_ns)
        return acc


@dataclass(slots=True)
class Interval:
    """A run (``phase`` None) or a phase, on one meter."""

    meter: str
    run: str
    phase: str | None
    tags: dict[str, str]
    start_rt_ns: int
    start_boot_ns: int
    integrator: IntervalIntegrator = field(init=False)
    counter: CounterSpan = field(init=False)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # boot-time spans w/o readings
    last_t_boot: int | None = None
    stop_rt_ns: int | None = None
    stop_boot_ns: int | None = None
    gap_threshold_ns: int = NS

    def __post_init__(self) -> None:
        self.integrator = IntervalIntegrator(self.start_boot_ns, history=HISTORY)
        self.counter = CounterSpan(self.start_boot_ns)

    def add(self, t_boot_ns: int, power_w: float | None, counter_j: float | None) -> None:
        """Feed one reading (boot-time stamp). Readings before the start bracket it."""
        last = self.last_t_boot
        if last is not None and t_boot_ns < last:
            return
        if power_w is not None:
            self.integrator.add(t_boot_ns, power_w)
        else:
            self.integrator.seen(t_boot_ns)
        if counter_j is not None:
            self.counter.add(t_boot_ns, counter_j)
        # A gap: no reading for longer than the threshold, inside the interval.
        prev = last if last is not None else self.start_boot_ns
        if t_boot_ns - prev > self.gap_threshold_ns and t_boot_ns > self.start_boot_ns:
            self.gaps.append((max(prev, self.start_boot_ns), t_boot_ns))
        self.last_t_boot = t_boot_ns

    def covers_stop(self) -> bool:
        return self.stop_boot_ns is not None and self.integrator.covers(self.stop_boot_ns)

    def energy(self, stop_boot_ns: int) -> EnergyResult | None:
        """The energy over [start, stop]; None when no reading measured it
        (:meth:`~wattd.energy.IntervalIntegrator.measured`): never 0 J."""
        if not self.integrator.measured(stop_boot_ns):
            return None
        try:
            return self.integrator.result(stop_boot_ns)
        except ValueError:  # the stop is older than the retained history
            return None

    def duration_s(self, stop_boot_ns: int) -> float:
        return max(0, stop_boot_ns - self.start_boot_ns) / NS

    def gap_s(self, stop_boot_ns: int) -> float:
        total = 0
        for lo, gap_end in self.gaps:
            hi = min(gap_end, stop_boot_ns)
            if hi > lo:
                total += hi - lo
        # Still waiting at stop time with nothing since the last reading.
        last = self.last_t_boot if self.last_t_boot is not None else self.start_boot_ns
        if stop_boot_ns - last > self.gap_threshold_ns:
            total += stop_boot_ns - max(last, self.start_boot_ns)
        return total / NS
