"""The shared energy definition: exact integrals of linearly interpolated power."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wattd.energy import IntervalIntegrator, integrate

S = 1_000_000_000
READINGS = [(0, 10.0), (S, 10.0), (2 * S, 20.0), (3 * S, 20.0)]


def test_boundaries_between_readings_are_interpolated() -> None:
    res = integrate(READINGS, S // 2, 5 * S // 2)
    # 0.5..1 s: 5 J; 1..2 s ramp 10->20 W: 15 J; 2..2.5 s: 10 J
    assert res.energy_j == pytest.approx(30.0)
    assert res.duration_s == pytest.approx(2.0)
    assert res.mean_w == pytest.approx(15.0)
    assert res.samples == 2
    assert (res.min_w, res.max_w) == (10.0, 20.0)
    assert res.extrapolated_s == 0.0


def test_interval_inside_one_gap_uses_interpolated_powers() -> None:
    res = integrate(READINGS, int(1.25 * S), int(1.75 * S))
    assert res.energy_j == pytest.approx(0.5 * 15.0)
    assert res.samples == 0
    assert res.min_w == pytest.approx(12.5)
    assert res.max_w == pytest.approx(17.5)


def test_ends_beyond_readings_are_held_and_reported() -> None:
    res = integrate(READINGS, -S, 4 * S)
    assert res.energy_j == pytest.approx(10 + 10 + 15 + 20 + 20)
    assert res.extrapolated_s == pytest.approx(2.0)


def test_phase_result_while_run_goes_on() -> None:
    integ = IntervalIntegrator(0)
    for t, p in READINGS:
        integ.add(t, p)
    assert integ.result(S).energy_j == pytest.approx(10.0)
    assert integ.result(3 * S).energy_j == pytest.approx(45.0)
    assert integ.covers(3 * S)
    assert not integ.covers(3 * S + 1)


def test_out_of_order_reading_is_ignored() -> None:
    integ = IntervalIntegrator(0)
    integ.add(0, 10.0)
    integ.add(2 * S, 10.0)
    integ.add(S, 1000.0)
    assert integ.result(2 * S).energy_j == pytest.approx(20.0)


def test_no_reading_is_an_error() -> None:
    with pytest.raises(ValueError, match="no reading"):
        IntervalIntegrator(0).result(S)


def _reference(readings: list[tuple[int, float]], a: int, b: int) -> float:
    """Independent form: extend the samples to +-infinity with held ends, then
    integrate each linear piece clipped to [a, b] analytically."""
    far = 10**30
    pts = [(-far, readings[0][1]), *readings, (far, readings[-1][1])]
    total = 0.0
    for (t0, p0), (t1, p1) in itertools.pairwise(pts):
        lo, hi = max(a, t0), min(b, t1)
        if hi <= lo or t1 == t0:
            continue
        slope = (p1 - p0) / (t1 - t0)
        p_lo = p0 + slope * (lo - t0)
        p_hi = p0 + slope * (hi - t0)
        total += (p_lo + p_hi) / 2 * (hi - lo)
    return total / S


@given(gaps=st.lists(st.integers(1, 3 * S), min_size=2, max_size=12),
       powers=st.lists(st.floats(0, 100), min_size=12, max_size=12),
       a_frac=st.floats(-0.2, 1.0), length=st.floats(0.01, 1.2))
def test_matches_fine_numerical_integral(gaps: list[int], powers: list[float], a_frac: float,
                                         length: float) -> None:
    t = 0
    readings = []
    for gap, p in zip(gaps, powers, strict=False):
        readings.append((t, p))
        t += gap
    span = readings[-1][0] or 1
    a = int(a_frac * span)
    b = a + max(1, int(length * span))
    res = integrate(readings, a, b)
    assert res.energy_j == pytest.approx(_reference(readings, a, b), rel=1e-9, abs=1e-12)


def _state(integ: IntervalIntegrator) -> tuple[object, ...]:
    # Private state on purpose: extend() must leave exactly what add() leaves.
    return (integ._before, list(integ._hist), integ._head_extrap_ns,
            integ._truncated)


_reading = st.tuples(st.integers(-5 * S, 40 * S),
                     st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                               st.sampled_from([0.0, -0.0, 1.5])))


@given(readings=st.lists(_reading, max_size=60),
       sort=st.booleans(),
       history=st.integers(1, 8),
       start=st.integers(-S, 10 * S),
       until=st.one_of(st.none(), st.integers(-S, 40 * S)),
       chunks=st.lists(st.integers(1, 20), max_size=6),
       stops=st.lists(st.integers(-S, 45 * S), min_size=1, max_size=4))
# Signed zeros: min()/max() keep the first of two equal values.
@example(readings=[(0, 0.0), (S, -0.0), (2 * S, 0.0)], sort=False, history=4, start=0,
         until=None, chunks=[], stops=[3 * S])
def test_extend_equals_repeated_add(readings: list[tuple[int, float]], sort: bool, history: int,
                                    start: int, until: int | None, chunks: list[int],
                                    stops: list[int]) -> None:
    if sort:
        readings = sorted(readings, key=lambda r: r[0])
    by_add = IntervalIntegrator(start, history=history)
    by_extend = IntervalIntegrator(start, history=history)
    # Reference: add() one by one, stopping after the first reading at or past `until`.
    rest = list(readings)
    consumed_ref: list[int] = []
    for size in [*chunks, len(rest)]:
        chunk, rest = rest[:size], rest[size:]
        n = 0
        for t, p in chunk:
            by_add.add(t, p)
            n += 1
            if until is not None and t >= until:
                break
        consumed_ref.append(n)
        rest = chunk[n:] + rest if n < len(chunk) else rest
    rest = list(readings)
    consumed: list[int] = []
    for size in [*chunks, len(rest)]:
        chunk, rest = rest[:size], rest[size:]
        n = by_extend.extend(iter(chunk), until)
        consumed.append(n)
        rest = chunk[n:] + rest if n < len(chunk) else rest
    assert consumed == consumed_ref
    # repr: bit for bit (0.0 == -0.0 would hide a sign difference).
    assert repr(_state(by_extend)) == repr(_state(by_add))
    for stop in stops:
        try:
            expected: object = by_add.result(stop)
        except ValueError as exc:
            expected = str(exc)
        try:
            got: object = by_extend.result(stop)
        except ValueError as exc:
            got = str(exc)
        assert repr(got) == repr(expected)


class _ReferenceAdd(IntervalIntegrator):
    """add() as first written (plain, via last_t_ns and min()/max()): the
    optimised add() must leave the same state, bit for bit."""

    __slots__ = ()

    def add(self, t_ns: int, power_w: float) -> None:
        last_t = self.last_t_ns
        if last_t is not None and t_ns < last_t:
            return
        start = self.start_ns
        if t_ns < start:
            self._before = (t_ns, power_w)
            return
        if not self._hist:
            if self._before is None:
                self._head_extrap_ns = t_ns - start
                energy = power_w * (t_ns - start)
            else:
                b_t, b_p = self._before
                p_start = p_start_ref(b_t, b_p, t_ns, power_w, start)
                energy = (p_start + power_w) * 0.5 * (t_ns - start)
            self._hist.append((t_ns, power_w, energy, 1, power_w, power_w))
            return
        if len(self._hist) == self._hist.maxlen:
            self._truncated = True
        p_t, p_p, p_e, p_n, p_min, p_max = self._hist[-1]
        energy = p_e + (p_p + power_w) * 0.5 * (t_ns - p_t)
        self._hist.append((t_ns, power_w, energy, p_n + 1, min(p_min, power_w),
                           max(p_max, power_w)))


def p_start_ref(t0: int, p0: float, t1: int, p1: float, t: int) -> float:
    if t1 == t0:
        return p1
    return p0 + (p1 - p0) * ((t - t0) / (t1 - t0))


@given(readings=st.lists(_reading, max_size=40), sort=st.booleans(), history=st.integers(0, 6),
       start=st.integers(-S, 10 * S))
@example(readings=[(0, 0.0), (S, -0.0), (2 * S, 0.0), (3 * S, -0.0)], sort=False, history=4,
         start=0)
def test_add_equals_reference(readings: list[tuple[int, float]], sort: bool, history: int,
                              start: int) -> None:
    if sort:
        readings = sorted(readings, key=lambda r: r[0])
    fast = IntervalIntegrator(start, history=history)
    ref = _ReferenceAdd(start, history=history)
    for t, p in readings:
        fast.add(t, p)
        ref.add(t, p)
        assert repr(_state(fast)) == repr(_state(ref))


def test_measured_needs_a_reading_inside_or_one_on_each_side() -> None:
    def integ(readings: list[tuple[int, float]]) -> IntervalIntegrator:
        out = IntervalIntegrator(10 * S)
        for t, p in readings:
            out.add(t, p)
        return out

    assert not integ([]).measured(12 * S)  # no reading at all
    assert not integ([(9 * S, 5.0)]).measured(12 * S)  # held from before the start only
    assert not integ([(13 * S, 5.0)]).measured(12 * S)  # held from after the stop only
    assert integ([(9 * S, 5.0), (13 * S, 5.0)]).measured(12 * S)  # interpolated across
    assert integ([(10 * S, 5.0)]).measured(12 * S)  # a reading at the start is inside
    assert integ([(11 * S, 5.0)]).measured(12 * S)  # readings stopping part-way count
    assert not integ([(12 * S, 5.0)]).measured(12 * S)  # at the stop only: held backwards
    # Frames without a power value during the run: the meter was delivering, the
    # power held from the next refresh (a GB202 at a few watts) is its measurement.
    refreshing = IntervalIntegrator(10 * S)
    refreshing.seen(10 * S + S // 2)
    assert not refreshing.measured(12 * S)  # ...but with no power at all, nothing
    refreshing.add(13 * S, 4.0)
    assert refreshing.measured(12 * S)
    assert refreshing.result(12 * S).energy_j == 8.0
    late = IntervalIntegrator(10 * S)
    late.seen(12 * S)  # a frame at the stop, not during the run
    late.add(13 * S, 4.0)
    assert not late.measured(12 * S)
    # What the result says for each is unchanged (extrapolated_s tells the held span).
    held = integ([(9 * S, 5.0)]).result(12 * S)
    assert (held.samples, held.extrapolated_s) == (0, 2.0)
