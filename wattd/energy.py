"""The one definition of a run's energy, shared by the daemon (online, on
CLOCK_BOOTTIME stamps) and ``wattd report`` (offline, on CLOCK_REALTIME stamps).

Power is a sampled signal: between two consecutive readings it is linearly
interpolated; before the first or after the last known reading it is held
constant (that span is reported as ``extrapolated_s``). A run's energy is
the exact integral of that signal over [start, stop]. ``samples``, ``min_w``
and ``max_w`` describe the readings with start <= t < stop (the interpolated
boundary powers when no reading falls inside). A run during which the
meter delivered no reading at all (none in [start, stop), with or without a
power value) and that has no power reading on each side to interpolate
between has no energy (:meth:`IntervalIntegrator.measured`): holding one
outside reading over a run the meter was silent during is not a measurement
of it. (A chip that keeps sending frames without refreshing power, like a
GB202 at a few watts, was delivering: its power is held as before.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

NS = 1_000_000_000


@dataclass(slots=True, frozen=True)
class EnergyResult:
    energy_j: float
    duration_s: float
    mean_w: float
    min_w: float
    max_w: float
    samples: int
    extrapolated_s: float


def _lerp(t0: int, p0: float, t1: int, p1: float, t: int) -> float:
    if t1 == t0:
        return p1
    return p0 + (p1 - p0) * ((t - t0) / (t1 - t0))


# One history entry: (t_ns, power_w, energy from start to t in W*ns, samples in
# [start, t], min, max, extrapolated ns before the first reading).
_Entry = tuple[int, float, float, int, float, float]


class IntervalIntegrator:
    """Streaming integral of power from ``start_ns`` on.

    Feed readings in time order with :meth:`add`; readings before the start
    are allowed (the last one brackets the start). :meth:`result` gives the
    integral up to any stop time not older than the retained history (the
    last ``history`` readings), so a phase can close while the run goes on
    and a stop can be resolved after readings past it have arrived.
    Memory is O(history).
    """

    __slots__ = ("_before", "_first_seen_ns", "_head_extrap_ns", "_hist", "_truncated",
                 "start_ns")

    def __init__(self, start_ns: int, history: int = 256) -> None:
        self.start_ns = start_ns
        self._before: tuple[int, float] | None = None  # last reading with t < start
        self._hist: deque[_Entry] = deque(maxlen=history)  # readings with t >= start
        self._head_extrap_ns = 0
        self._truncated = False  # the oldest in-run readings fell out of the history
        self._first_seen_ns: int | None = None  # first reading without power at/after start

    @property
    def last_t_ns(self) -> int | None:
        if self._hist:
            return self._hist[-1][0]
        return None if self._before is None else self._before[0]

    def add(self, t_ns: int, power_w: float) -> None:
        """Add one reading. Out-of-order readings (older than the last) are ignored."""
        hist = self._hist
        if hist:
            # The usual case, kept short (the daemon calls this for every reading
            # of every open run): entries only hold readings at or after the start.
            p_t, p_p, p_e, p_n, p_min, p_max = hist[-1]
            if t_ns < p_t:
                return
            if len(hist) == hist.maxlen:
                self._truncated = True
            # min()/max() semantics: the old value is kept unless strictly beyond.
            hist.append((t_ns, power_w, p_e + (p_p + power_w) * 0.5 * (t_ns - p_t), p_n + 1,
                         power_w if power_w < p_min else p_min,
                         power_w if power_w > p_max else p_max))
            return
        before = self._before
        if before is not None and t_ns < before[0]:
            return
        start = self.start_ns
        if t_ns < start:
            self._before = (t_ns, power_w)
            return
        if before is None:
            self._head_extrap_ns = t_ns - start
            energy = power_w * (t_ns - start)
        else:
            b_t, b_p = before
            p_start = _lerp(b_t, b_p, t_ns, power_w, start)
            energy = (p_start + power_w) * 0.5 * (t_ns - start)
        hist.append((t_ns, power_w, energy, 1, power_w, power_w))

    def extend(self, readings: Iterable[tuple[int, float]], until_ns: int | None = None) -> int:
        """Add time-ordered readings; the same state, bit for bit, as calling
        :meth:`add` on each. With ``until_ns``, stop right after the first
        reading at or after it (the rest are not consumed). Returns how many
        readings were taken.

        The hot path of ``wattd report``: once the history holds a reading,
        the running integral lives in locals and one tuple is appended per
        reading, with no method call.
        """
        hist = self._hist
        maxlen = hist.maxlen
        taken = 0
        it = iter(readings)
        if maxlen is None or maxlen < 2:
            for t_ns, power_w in it:
                self.add(t_ns, power_w)
                taken += 1
                if until_ns is not None and t_ns >= until_ns:
                    break
            return taken
        # Until the history holds a reading (before the start, the first
        # in-run reading), take the general path.
        if not hist:
            for t_ns, power_w in it:
                self.add(t_ns, power_w)
                taken += 1
                if until_ns is not None and t_ns >= until_ns:
                    return taken
                if hist:
                    break
            else:
                return taken
        stop = until_ns
        append = hist.append
        p_t, p_p, p_e, p_n, p_min, p_max = hist[-1]
        count = len(hist)
        for t_ns, power_w in it:
            taken += 1
            if t_ns >= p_t:  # older readings are ignored, as in add()
                p_e = p_e + (p_p + power_w) * 0.5 * (t_ns - p_t)
                p_n += 1
                # min()/max() semantics (the old value kept unless strictly beyond),
                # without a call per reading.
                if power_w < p_min:  # noqa: PLR1730 - hot path, see above
                    p_min = power_w
                if power_w > p_max:  # noqa: PLR1730 - hot path, see above
                    p_max = power_w
                append((t_ns, power_w, p_e, p_n, p_min, p_max))
                p_t = t_ns
                p_p = power_w
                count += 1
            if stop is not None and t_ns >= stop:
                break
        if count > maxlen:
            # add() flags truncation when appending to a full history.
            self._truncated = True
        return taken

    def covers(self, stop_ns: int) -> bool:
        """True once a reading at or after ``stop_ns`` has been added."""
        last_t = self.last_t_ns
        return last_t is not None and last_t >= stop_ns

    def seen(self, t_ns: int) -> None:
        """A reading without a power value (a frame that did not refresh it):
        the meter was delivering at ``t_ns``, though it adds nothing to the
        integral."""
        if self._first_seen_ns is None and t_ns >= self.start_ns:
            self._first_seen_ns = t_ns

    def measured(self, stop_ns: int) -> bool:
        """Whether the meter delivered during [start, stop]: a reading stamped
        in [start, stop) (with power, or without it, :meth:`seen`), or readings
        with power on each side of the run to interpolate between, and a
        power known to integrate. False with no reading at all and with power
        held from one side over a run the meter said nothing during (the last
        reading before the start, or the first after the stop): that run has
        no energy to report, never 0 J."""
        hist = self._hist
        stop_ns = max(stop_ns, self.start_ns)
        if hist and (self._truncated or hist[0][0] < stop_ns):
            return True
        if not hist and self._before is None:
            return False  # no power at all: nothing to integrate
        seen = self._first_seen_ns
        if seen is not None and seen < stop_ns:
            return True  # frames came, power held from the bracketing one (extrapolated_s)
        return self._before is not None and bool(hist)

    def result(self, stop_ns: int) -> EnergyResult:
        """The integral over [start, stop]. Raises ValueError if no reading was
        ever added or the stop is older than the retained history."""
        start = self.start_ns
        stop_ns = max(stop_ns, start)
        duration_ns = stop_ns - start
        hist = self._hist
        # Find the last entry with t < stop (entries hold readings with t >= start).
        idx = len(hist) - 1
        while idx >= 0 and hist[idx][0] >= stop_ns:
            idx -= 1
        nxt: tuple[int, float] | None = None
        if idx + 1 < len(hist):
            nxt = (hist[idx + 1][0], hist[idx + 1][1])
        if idx < 0:
            # No reading inside [start, stop): bracket with `before` and `nxt`.
            if self._truncated:
                raise ValueError("stop is older than the retained history")
            if self._before is None and nxt is None:
                raise ValueError("no reading to integrate")
            return self._bracketed(start, stop_ns, self._before, nxt)
        t, p, energy, n, lo, hi = hist[idx]
        extrap = self._head_extrap_ns
        if nxt is None:
            energy += p * (stop_ns - t)
            extrap += stop_ns - t
        else:
            p_stop = _lerp(t, p, nxt[0], nxt[1], stop_ns)
            energy += (p + p_stop) * 0.5 * (stop_ns - t)
        return _make(energy, duration_ns, n, lo, hi, extrap)

    @staticmethod
    def _bracketed(start: int, stop: int, before: tuple[int, float] | None,
                   after: tuple[int, float] | None) -> EnergyResult:
        duration_ns = stop - start
        if before is not None and after is not None:
            p0 = _lerp(before[0], before[1], after[0], after[1], start)
            p1 = _lerp(before[0], before[1], after[0], after[1], stop)
            extrap = 0
        elif before is not None:
            p0 = p1 = before[1]
            extrap = duration_ns
        else:
            assert after is not None
            p0 = p1 = after[1]
            extrap = duration_ns
        energy = (p0 + p1) * 0.5 * duration_ns
        return _make(energy, duration_ns, 0, min(p0, p1), max(p0, p1), extrap)


def _make(energy_wns: float, duration_ns: int, samples: int, lo: float, hi: float,
          extrap_ns: int) -> EnergyResult:
    energy_j = energy_wns / NS
    duration_s = duration_ns / NS
    mean_w = energy_j / duration_s if duration_ns > 0 else lo
    return EnergyResult(energy_j=energy_j, duration_s=duration_s, mean_w=mean_w, min_w=lo,
                        max_w=hi, samples=samples, extrapolated_s=extrap_ns / NS)


def integrate(readings: Iterable[tuple[int, float]], start_ns: int, stop_ns: int) -> EnergyResult:
    """Offline form: integrate time-ordered (t_ns, power_w) readings over [start, stop]."""
    integ = IntervalIntegrator(start_ns, history=2)
    for t_ns, power_w in readings:
        if integ.covers(stop_ns):
            break
        integ.add(t_ns, power_w)
    return integ.result(stop_ns)
