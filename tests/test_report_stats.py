"""Report statistics against scipy (a dev extra; never imported by wattd)."""

from __future__ import annotations

import math

import pytest
from scipy import special
from scipy import stats as sps

from wattd.report import stats

DFS = [1, 1.5, 2, 3, 4.7, 10, 29, 100, 1e4]


@pytest.mark.parametrize("df", DFS)
def test_t_cdf_and_sf_match_scipy(df: float) -> None:
    for t in [-80.0, -7.0, -2.2, -1.0, -0.1, 0.0, 0.3, 1.0, 2.776, 6.5, 300.0]:
        assert stats.t_cdf(t, df) == pytest.approx(sps.t.cdf(t, df), abs=1e-9)
        assert stats.t_sf(t, df) == pytest.approx(sps.t.sf(t, df), abs=1e-9)


@pytest.mark.parametrize("df", DFS)
def test_t_ppf_matches_scipy(df: float) -> None:
    for q in [1e-7, 0.001, 0.025, 0.2, 0.5, 0.8, 0.975, 0.995, 1 - 1e-6]:
        expected = sps.t.ppf(q, df)
        assert stats.t_ppf(q, df) == pytest.approx(expected, rel=1e-8, abs=1e-9)


def test_betainc_matches_scipy() -> None:
    for a in [0.5, 1.0, 2.5, 14.0, 500.0]:
        for b in [0.5, 3.0, 40.0]:
            for x in [0.0, 1e-6, 0.1, 0.5, 0.93, 1.0]:
                assert stats.betainc(a, b, x) == pytest.approx(special.betainc(a, b, x),
                                                               abs=1e-10)


def test_t_quantile_of_small_samples_is_the_textbook_value() -> None:
    assert stats.t_ppf(0.975, 2) == pytest.approx(4.302652729911275, abs=1e-9)
    assert stats.t_ppf(0.975, 4) == pytest.approx(2.776445105197793, abs=1e-9)


def test_summarize_matches_scipy() -> None:
    values = [36.79, 38.16, 36.03, 37.2]
    s = stats.summarize(values)
    assert s.n == 4
    assert s.mean == pytest.approx(sum(values) / 4, abs=1e-12)
    assert s.stdev == pytest.approx(float(sps.tstd(values)), abs=1e-9)
    assert s.rel_stdev == pytest.approx(float(sps.tstd(values)) / s.mean, abs=1e-9)
    low, high = sps.t.interval(0.95, 3, loc=s.mean, scale=sps.sem(values))
    assert s.ci95_low == pytest.approx(low, abs=1e-6)
    assert s.ci95_high == pytest.approx(high, abs=1e-6)


def test_summarize_single_value_has_no_spread() -> None:
    s = stats.summarize([5.0])
    assert (s.mean, s.stdev, s.ci95_low, s.ci95_high) == (5.0, None, None, None)
    with pytest.raises(ValueError):
        stats.summarize([])


@pytest.mark.parametrize(("a", "b"), [
    ([36.8, 38.2, 36.0], [12.6, 12.3, 13.0]),
    ([10.1, 10.5, 9.8, 10.0, 10.3], [3.1, 3.3, 2.9]),
    ([1.0, 1.1], [0.9, 1.3, 1.2, 0.8]),
])
def test_welch_p_matches_scipy(a: list[float], b: list[float]) -> None:
    expected = sps.ttest_ind(a, b, equal_var=False).pvalue
    assert stats.welch_p(a, b) == pytest.approx(float(expected), abs=1e-9)


def test_welch_p_undefined_without_spread() -> None:
    assert stats.welch_p([1.0], [2.0, 3.0]) is None
    assert stats.welch_p([1.0, 1.0], [2.0, 2.0]) is None


def _fieller_reference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Fieller's interval written from the textbook with scipy's t quantile."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = float(sps.tvar(a)) / len(a)
    vb = float(sps.tvar(b)) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = float(sps.t.ppf(0.975, df))
    ratio = ma / mb
    g = t * t * vb / mb**2
    half = t / mb * math.sqrt(va + ratio**2 * vb - g * va)
    return (ratio - half) / (1 - g), (ratio + half) / (1 - g)


@pytest.mark.parametrize(("a", "b"), [
    ([36.8, 38.2, 36.0], [12.6, 12.3, 13.0]),
    ([10.1, 10.5, 9.8, 10.0, 10.3], [3.1, 3.3, 2.9]),
])
def test_fieller_matches_reference_and_its_defining_equation(a: list[float],
                                                            b: list[float]) -> None:
    r = stats.fieller_ratio(a, b)
    low, high = _fieller_reference(a, b)
    assert r.ratio == pytest.approx((sum(a) / len(a)) / (sum(b) / len(b)), rel=1e-12)
    assert r.ci95_low == pytest.approx(low, abs=1e-6)
    assert r.ci95_high == pytest.approx(high, abs=1e-6)
    assert r.ci95_low < r.ratio < r.ci95_high
    # The end points solve (ma - R mb)^2 = t^2 (va + R^2 vb).
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va, vb = float(sps.tvar(a)) / len(a), float(sps.tvar(b)) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = float(sps.t.ppf(0.975, df))
    for end in (r.ci95_low, r.ci95_high):
        assert (ma - end * mb) ** 2 == pytest.approx(t * t * (va + end * end * vb), rel=1e-9)


def test_fieller_unbounded_when_denominator_not_significant() -> None:
    r = stats.fieller_ratio([5.0, 6.0, 5.5], [0.1, -0.2, 0.4])
    assert r.ci95_low is None
    assert r.ci95_high is None
