"""Small-sample statistics for repeated runs, with no scipy at run time.

Student t distribution through the regularized incomplete beta function
(continued fraction, modified Lentz), confidence intervals for a mean,
Fieller's interval for a ratio of two independent means, and Welch's t-test.
Tests check every figure against scipy to 1e-6 or better.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-16
_TINY = 1e-300
_MAX_ITER = 1000


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0, 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("betainc needs a > 0 and b > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a+1)/(a+b+2); use the
    # symmetry I_x(a,b) = 1 - I_{1-x}(b,a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """Survival function P(T > t) of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)  # P(T > |t|)
    return tail if t >= 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    """Cumulative distribution P(T <= t) of Student's t."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def t_pdf(t: float, df: float) -> float:
    log_norm = (math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0)
                - 0.5 * math.log(df * math.pi))
    return math.exp(log_norm - (df + 1.0) / 2.0 * math.log1p(t * t / df))


@functools.lru_cache(maxsize=4096)  # a report asks for the same (0.975, n - 1) per group
def t_ppf(q: float, df: float) -> float:
    """Quantile (inverse CDF) of Student's t: Newton steps kept inside a bisection bracket."""
    if not 0.0 < q < 1.0:
        if q == 0.0:
            return -math.inf
        if q == 1.0:
            return math.inf
        raise ValueError("quantile probability must lie in [0, 1]")
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    x = 0.5 * (lo + hi)
    for _ in range(200):
        f = t_cdf(x, df) - q
        if f == 0.0:
            return x
        if f < 0:
            lo = x
        else:
            hi = x
        slope = t_pdf(x, df)
        nxt = x - f / slope if slope > 0 else 0.5 * (lo + hi)
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-14 * max(1.0, abs(x)):
            return nxt
        x = nxt
    return x


@dataclass(slots=True, frozen=True)
class Summary:
    """Mean of a sample with its spread. Spread figures are None for n < 2."""

    n: int
    mean: float
    stdev: float | None  # sample standard deviation (n - 1)
    rel_stdev: float | None  # stdev / |mean|
    ci95_low: float | None  # Student t interval for the mean
    ci95_high: float | None


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    n = len(values)
    if n == 0:
        raise ValueError("cannot summarize an empty sample")
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(n, mean, None, None, None, None)
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    stdev = math.sqrt(var)
    rel = stdev / abs(mean) if mean != 0 else None
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * stdev / math.sqrt(n)
    return Summary(n, mean, stdev, rel, mean - half, mean + half)


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom from the two sample variances."""
    va = var_a / n_a
    vb = var_b / n_b
    denom = va * va / (n_a - 1) + vb * vb / (n_b - 1)
    if denom == 0:
        return float(n_a + n_b - 2)
    return (va + vb) ** 2 / denom


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None when undefined (n < 2 or no variance)."""
    if len(a) < 2 or len(b) < 2:
        return None
    sa = summarize(a)
    sb = summarize(b)
    assert sa.stdev is not None
    assert sb.stdev is not None
    va = sa.stdev ** 2 / sa.n
    vb = sb.stdev ** 2 / sb.n
    if va + vb == 0:
        return None
    t = (sa.mean - sb.mean) / math.sqrt(va + vb)
    df = welch_df(sa.stdev ** 2, sa.n, sb.stdev ** 2, sb.n)
    return min(1.0, 2.0 * t_sf(abs(t), df))


@dataclass(slots=True, frozen=True)
class Ratio:
    ratio: float  # mean a / mean b
    ci95_low: float | None  # Fieller; None when the interval is unbounded or undefined
    ci95_high: float | None


def fieller_ratio(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Ratio:
    """Ratio of two independent means with Fieller's confidence interval.

    Solves (m_a - R m_b)^2 = t^2 (v_a + R^2 v_b) for R, with v = s^2/n and t the
    Student quantile at the Welch-Satterthwaite degrees of freedom. The interval
    is bounded only when m_b differs significantly from zero (g = t^2 v_b / m_b^2 < 1).
    """
    sa = summarize(a)
    sb = summarize(b)
    if sb.mean == 0:
        raise ValueError("ratio to a zero mean")
    ratio = sa.mean / sb.mean
    if sa.stdev is None or sb.stdev is None:
        return Ratio(ratio, None, None)
    va = sa.stdev ** 2 / sa.n
    vb = sb.stdev ** 2 / sb.n
    df = welch_df(sa.stdev ** 2, sa.n, sb.stdev ** 2, sb.n)
    t = t_ppf(0.5 + confidence / 2.0, df)
    t2 = t * t
    ma, mb = sa.mean, sb.mean
    a2 = mb * mb - t2 * vb
    if a2 <= 0:
        return Ratio(ratio, None, None)
    disc = t2 * (va * mb * mb + vb * ma * ma) - t2 * t2 * va * vb
    if disc < 0:
        return Ratio(ratio, None, None)
    root = math.sqrt(disc)
    low = (ma * mb - root) / a2
    high = (ma * mb + root) / a2
    return Ratio(ratio, min(low, high), max(low, high))
