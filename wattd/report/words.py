"""Numbers and sentences for people: formatting shared by every report output."""

from __future__ import annotations

from wattd.report.model import Comparison, Report, RunRow
from wattd.report.records import ScanStats
from wattd.report.stats import Summary

# Measurements the energy scan leaves to wattd.report.experiment (not "unknown").
EXPERIMENT_MEASUREMENTS = frozenset(("wattd_result", "wattd_latency", "wattd_cpu"))

_METRIC_WORDS = {
    "energy_j": "energy",
    "net_energy_j": "net energy",
    "energy_per_unit_j": "energy per {unit}",
    "net_energy_per_unit_j": "net energy per {unit}",
    "time_per_request_ms": "time per request",
    "cpu_per_unit_s": "CPU time per {unit}",
}
# The unit a group figure of each metric is in, as a JSON key suffix.
METRIC_SUFFIX = {"time_per_request_ms": "_ms", "cpu_per_unit_s": "_s"}


def fmt(value: float | None, unit: str = "") -> str:
    """A number for people: about 4 significant digits, no exponent for usual sizes."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.3f}"
    elif magnitude >= 0.001 or magnitude == 0:
        text = f"{value:.4g}" if magnitude else "0"
    else:
        text = f"{value:.3e}"
    return f"{text}{unit}"


def unit_word(per_tag: str) -> str:
    """``requests`` -> ``request``: the unit of work a per-unit figure is for."""
    if per_tag.endswith("ies"):
        return per_tag[:-3] + "y"
    if per_tag.endswith("s") and not per_tag.endswith("ss"):
        return per_tag[:-1]
    return per_tag


def metric_words(metric: str, per_tag: str) -> str:
    return _METRIC_WORDS[metric].format(unit=unit_word(per_tag))


def flag_text(row: RunRow) -> str:
    parts = []
    for key, value in row.flags().items():
        if value is True:
            parts.append(key)
        else:
            parts.append(f"{key.removesuffix('_s')}={fmt(float(value))}s")
    return " ".join(parts)


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _pm(s: Summary, scale: float = 1.0) -> str:
    if s.ci95_high is None:
        return f" (n={s.n}, no interval)"
    return f" (+/- {fmt((s.ci95_high - s.mean) * scale)} at 95 %)"


def summary_line(c: Comparison, per_tag: str) -> str:
    """The plain-English answer: which one needs less (energy, time, CPU), how sure we are."""
    unit = unit_word(per_tag)
    lo_group, hi_group = (c.a, c.b) if c.ratio.ratio <= 1 else (c.b, c.a)
    lo = lo_group.figures[c.metric]
    hi = hi_group.figures[c.metric]
    factor = hi.mean / lo.mean if lo.mean else float("inf")
    if c.ratio.ci95_low is not None and c.ratio.ci95_high is not None:
        if c.ratio.ratio <= 1:
            k_lo, k_hi = 1 / c.ratio.ci95_high, 1 / c.ratio.ci95_low
        else:
            k_lo, k_hi = c.ratio.ci95_low, c.ratio.ci95_high
        interval = f", 95 % CI {fmt(k_lo)} to {fmt(k_hi)}"
    else:
        interval = ""
    p = "" if c.p_value is None else f", Welch p = {p_text(c.p_value)}"
    meter = f" [meter {c.meter}]"
    tail = f"{interval}{p}{meter}"
    if c.metric == "time_per_request_ms":
        return (f"{lo_group.group} took {fmt(lo.mean)} ms per request{_pm(lo)}, "
                f"{hi_group.group} {fmt(hi.mean)} ms{_pm(hi)}: {lo_group.group} is "
                f"{fmt(factor)} x faster per request{tail}")
    if c.metric == "cpu_per_unit_s":
        return (f"{lo_group.group} used {fmt(lo.mean * 1000)} ms of server CPU per {unit}"
                f"{_pm(lo, 1000)}, {hi_group.group} {fmt(hi.mean * 1000)} ms"
                f"{_pm(hi, 1000)}: {lo_group.group} needs {fmt(factor)} x less "
                f"CPU{tail}")
    per = f" per {unit}" if "per_unit" in c.metric else ""
    net = "net " if c.metric.startswith("net") else ""
    return (f"{lo_group.group} used {fmt(lo.mean)} {net}J{per}{_pm(lo)}, "
            f"{hi_group.group} {fmt(hi.mean)} {net}J{_pm(hi)}: {lo_group.group} needs "
            f"{fmt(factor)} x less {net}energy{tail}")


def conclusions(report: Report) -> list[str]:
    """One line per comparison for up to three groups; beyond, one ranking per
    compared metric and the line comparing the best two (every pair stays in the
    comparisons table)."""
    if len({(c.a.group, c.b.group) for c in report.comparisons}) <= 3:
        return [summary_line(c, report.per_tag) for c in report.comparisons]
    lines = []
    metrics = list(dict.fromkeys(c.metric for c in report.comparisons))
    for metric in metrics:
        for meter in dict.fromkeys(c.meter for c in report.comparisons):
            ranked = sorted((g for g in report.groups if g.meter == meter and g.has(metric)
                             and g.energy.n >= 2), key=lambda g: g.figures[metric].mean)
            if len(ranked) < 2:
                continue
            unit = {"time_per_request_ms": " ms", "cpu_per_unit_s": " s"}.get(metric, " J")
            items = ", ".join(f"{g.group} {fmt(g.figures[metric].mean, unit)}"
                              for g in ranked)
            lines.append(f"{metric_words(metric, report.per_tag)} [meter {meter}], lowest "
                         f"first: {items}")
            best = {ranked[0].group, ranked[1].group}
            lines += [summary_line(c, report.per_tag) for c in report.comparisons
                      if c.metric == metric and c.meter == meter and {c.a.group, c.b.group}
                      == best]
    return lines


def scan_notes(s: ScanStats) -> list[str]:
    """What the journal scan skipped or could not read, for people."""
    notes = []
    if s.torn_lines:
        notes.append(f"{s.torn_lines} torn line(s) (no newline at the end of a segment) "
                     "skipped")
    if s.bad_lines:
        notes.append(f"{s.bad_lines} line(s) that are not valid wattd line protocol skipped")
    unknown = [(name, n) for name, n in s.unknown.most_common()
               if name not in EXPERIMENT_MEASUREMENTS]
    if unknown:
        listed = ", ".join(f"{name} ({n})" for name, n in unknown[:10])
        notes.append(f"lines of other measurements ignored: {listed}")
    notes.extend(f"damaged segment, read up to the damage: {d}" for d in s.damaged_segments)
    notes.extend(s.notes)
    return notes
