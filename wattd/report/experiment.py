"""The experiment's other two sides, from the journal: load results and server CPU.

One pass over the journal (``wattd.journal.reader``) keeps only the lines of
the ``wattd_result``, ``wattd_latency`` and ``wattd_cpu`` measurements (SPEC 3);
blocks holding none of them are skipped with three substring searches, so the
pass costs little beside the energy scan. The runs themselves come from the
energy scan (``wattd.report.scan``); this module attaches to each run:

- its load results (``wattd_result`` fields, several points accumulate, a later
  value of a key wins) and its latency distribution (``wattd_latency``: the
  response time at each percentile ``q``). Points belong to the run of their
  ``run`` tag whose start is their ``run_start_ns``; a point without it goes
  to the latest run of that name started before it.
- its CPU figures, by time: the increase of ``cpu_s`` over exactly
  [start, stop], each end interpolated linearly between the two samples that
  bracket it (a run not bracketed by samples gets no CPU figure: a number that
  was not measured is never reported). ``cpu_pct_mean`` is that increase over
  the duration (the time-weighted mean, % of one core); ``rss_bytes_max`` the
  largest ``rss_bytes`` sampled in the run. A probe series is one (``host``,
  ``target``) pair; a run uses every series with a sample inside it that is
  tagged with that run or with no run (a sample tagged with another run, open
  on another meter at the same time, belongs to that run), and adds them up.
"""

from __future__ import annotations

import itertools
import math
import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from wattd.journal.reader import iter_blocks
from wattd.lineprotocol import FieldValue, LineProtocolError, Point, parse_line

RESULT = b"wattd_result"
LATENCY = b"wattd_latency"
CPU = b"wattd_cpu"
_PREFIXES = (RESULT + b",", LATENCY + b",", CPU + b",")


@dataclass(slots=True)
class _Entry:
    """Points of one measurement for one run (start known or not)."""

    run_start_ns: int | None
    t_ns: int  # the first point's time
    values: dict[float | str, float] = field(default_factory=dict)


@dataclass(slots=True)
class CpuSample:
    t_ns: int
    cpu_s: float | None
    cpu_pct: float | None
    rss_bytes: float | None
    run: str | None


@dataclass(slots=True)
class CpuSeries:
    """One probe's samples (one host and target), in time order."""

    samples: list[CpuSample] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # of every sample
    cpu_times: list[int] = field(default_factory=list)  # of the samples with cpu_s
    cpu_values: list[float] = field(default_factory=list)

    def sort(self) -> None:
        self.samples.sort(key=lambda s: s.t_ns)
        self.times = [s.t_ns for s in self.samples]
        with_cpu = [(s.t_ns, s.cpu_s) for s in self.samples if s.cpu_s is not None]
        self.cpu_times = [t for t, _ in with_cpu]
        self.cpu_values = [v for _, v in with_cpu]


@dataclass(slots=True)
class RunLoad:
    """What the load generator said about one run."""

    results: dict[str, float]
    latency_ms: dict[float, float]  # percentile (0..100) -> response time


@dataclass(slots=True)
class RunCpu:
    """The probed processes' CPU over one run (sums over the series used)."""

    cpu_s: float | None
    cpu_pct_mean: float | None
    rss_bytes_max: float | None
    # For the figure: per series, (seconds since the run's start, cpu_pct), from
    # the last sample before the start to the first after the stop.
    curves: list[tuple[str, list[tuple[float, float]]]]
    note: str | None = None


@dataclass(slots=True)
class ExperimentStats:
    result_points: int = 0
    latency_points: int = 0
    cpu_points: int = 0
    bad_lines: int = 0  # one of the three measurements without what it needs


@dataclass(slots=True)
class ExperimentData:
    results: dict[str, list[_Entry]] = field(default_factory=dict)  # run -> entries
    latency: dict[str, list[_Entry]] = field(default_factory=dict)
    cpu: dict[tuple[str, str], CpuSeries] = field(default_factory=dict)
    stats: ExperimentStats = field(default_factory=ExperimentStats)

    def load_of(self, run: str, start_ns: int, starts: list[int]) -> RunLoad | None:
        """The results of run ``run`` started at ``start_ns``; ``starts``: the
        start times of every run of that name (sorted), to place points without
        ``run_start_ns``."""
        results = _merged(self.results.get(run, ()), start_ns, starts)
        latency = _merged(self.latency.get(run, ()), start_ns, starts)
        if not results and not latency:
            return None
        return RunLoad({str(k): v for k, v in results.items()},
                       {float(k): v for k, v in latency.items()})

    def cpu_of(self, run: str, start_ns: int, stop_ns: int) -> RunCpu | None:
        if not self.cpu or stop_ns <= start_ns:
            return None
        used = []
        for (host, target), series in self.cpu.items():
            times = series.times
            lo, hi = bisect_left(times, start_ns), bisect_right(times, stop_ns)
            inside = series.samples[lo:hi]
            if inside and all(s.run in (None, run) for s in inside):
                # The figure also gets the samples just outside: a short run may
                # hold a single sample, and cpu_pct is over the interval before it.
                around = series.samples[max(0, lo - 1):hi + 1]
                used.append((f"{host} {target}".strip(), series, inside, around))
        if not used:
            return None
        total = 0.0
        uncovered = []
        rss_max: float | None = None
        curves = []
        for label, series, inside, around in used:
            increase = cpu_increase(series.cpu_times, series.cpu_values, start_ns, stop_ns)
            if increase is None:
                uncovered.append(label)
            else:
                total += increase
            rss = [s.rss_bytes for s in inside if s.rss_bytes is not None]
            if rss:
                rss_max = max(rss) + (rss_max or 0.0)
            curve = [((s.t_ns - start_ns) / 1e9, s.cpu_pct) for s in around
                     if s.cpu_pct is not None]
            if curve:
                curves.append((label, curve))
        duration_s = (stop_ns - start_ns) / 1e9
        if uncovered:
            note = (f"CPU samples of {', '.join(uncovered)} do not bracket the run's start "
                    "and stop: no cpu_s")
            return RunCpu(None, None, rss_max, curves, note)
        return RunCpu(total, 100.0 * total / duration_s, rss_max, curves)


def _merged(entries: Iterable[_Entry], start_ns: int, starts: list[int]
            ) -> dict[float | str, float]:
    out: dict[float | str, float] = {}
    for entry in entries:
        if entry.run_start_ns is None:
            # The latest run of that name started at or before the point.
            i = bisect_right(starts, entry.t_ns) - 1
            if i < 0 or starts[i] != start_ns:
                continue
        elif entry.run_start_ns != start_ns:
            continue
        out.update(entry.values)
    return out


def cpu_increase(times: list[int], values: list[float], start_ns: int,
                 stop_ns: int) -> float | None:
    """Increase of a cumulative ``cpu_s`` series (sorted times, values) over
    [start, stop], both ends interpolated between the bracketing samples; None
    unless both ends are bracketed. A step backwards (a restarted probe) adds
    nothing."""
    i0 = bisect_right(times, start_ns) - 1  # last sample at or before the start
    i1 = bisect_left(times, stop_ns)  # first sample at or after the stop
    if i0 < 0 or i1 >= len(times):
        return None
    path = [_at(times, values, i0, start_ns), *values[i0 + 1:i1],
            _at(times, values, i1 - 1, stop_ns)]
    return math.fsum(max(0.0, b - a) for a, b in itertools.pairwise(path))


def _at(times: list[int], values: list[float], i: int, t_ns: int) -> float:
    """The value at t, interpolated on the segment i .. i + 1."""
    t0, v0 = times[i], values[i]
    if t0 == t_ns or i + 1 >= len(times):
        return v0
    t1, v1 = times[i + 1], values[i + 1]
    if t1 == t0:
        return v1
    return v0 + (v1 - v0) * (t_ns - t0) / (t1 - t0)


def _number(value: FieldValue | None) -> float | None:
    if value is None or isinstance(value, (bool, str)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _start_of(point: Point) -> int | None:
    value = point.fields.get("run_start_ns")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ExperimentReader:
    """Feed journal lines of the three measurements; then :meth:`finish`."""

    def __init__(self) -> None:
        self.data = ExperimentData()

    def feed(self, raw: bytes) -> None:
        stats = self.data.stats
        try:
            point = parse_line(raw.decode("utf-8"))
        except (UnicodeDecodeError, LineProtocolError):
            stats.bad_lines += 1
            return
        name = point.measurement
        if name == "wattd_result":
            stats.result_points += 1
            self._result(point)
        elif name == "wattd_latency":
            stats.latency_points += 1
            self._latency(point)
        elif name == "wattd_cpu":
            stats.cpu_points += 1
            self._cpu(point)

    def _entry(self, table: dict[str, list[_Entry]], point: Point) -> _Entry | None:
        run = point.tags.get("run")
        if not run:
            self.data.stats.bad_lines += 1
            return None
        start = _start_of(point)
        entries = table.setdefault(run, [])
        for entry in entries:
            if start is not None and entry.run_start_ns == start:
                return entry
        entry = _Entry(start, point.t_ns)
        entries.append(entry)
        return entry

    def _result(self, point: Point) -> None:
        values = {k: _number(v) for k, v in point.fields.items() if k != "run_start_ns"}
        numbers = {k: v for k, v in values.items() if v is not None}
        if not numbers:
            self.data.stats.bad_lines += 1
            return
        entry = self._entry(self.data.results, point)
        if entry is not None:
            entry.values.update(numbers)

    def _latency(self, point: Point) -> None:
        ms = _number(point.fields.get("ms"))
        try:
            q = float(point.tags.get("q", ""))
        except ValueError:
            q = math.nan
        if ms is None or not 0.0 <= q <= 100.0:
            self.data.stats.bad_lines += 1
            return
        entry = self._entry(self.data.latency, point)
        if entry is not None:
            entry.values[q] = ms

    def _cpu(self, point: Point) -> None:
        host = point.tags.get("host", "")
        target = point.tags.get("target", "")
        f = point.fields
        sample = CpuSample(point.t_ns, _number(f.get("cpu_s")), _number(f.get("cpu_pct")),
                           _number(f.get("rss_bytes")), point.tags.get("run") or None)
        if sample.cpu_s is None and sample.cpu_pct is None:
            self.data.stats.bad_lines += 1
            return
        self.data.cpu.setdefault((host, target), CpuSeries()).samples.append(sample)

    def finish(self) -> ExperimentData:
        for series in self.data.cpu.values():
            series.sort()
        return self.data


def read_experiment(directory: str | os.PathLike[str]) -> ExperimentData:
    """One pass over the journal for the results, latencies and CPU samples."""
    reader = ExperimentReader()
    for _, block, _count in iter_blocks(directory):
        if RESULT not in block and LATENCY not in block and CPU not in block:
            continue
        for line in block.split(b"\n"):
            if line.startswith(_PREFIXES):
                reader.feed(line)
    return reader.finish()
