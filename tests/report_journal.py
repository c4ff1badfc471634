"""Hand-built journals for the report tests, written with the real line formatter."""

from __future__ import annotations

import gzip
from pathlib import Path

from wattd.lineprotocol import FieldValue, format_line

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a realistic epoch so timestamps have 19 digits


def ts(seconds: float) -> int:
    """Seconds after T0 as integer ns (exact for the fractions the tests use)."""
    return T0 + round(seconds * S)


class JournalBuilder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def power(self, meter: str, t_s: float, power_w: float, **tags: str) -> JournalBuilder:
        fields: dict[str, FieldValue] = {"power_w": float(power_w), "voltage_v": 230.0,
                                         "current_a": power_w / 230.0, "energy_j": 1.0,
                                         "clock_synced": True}
        self.lines.append(format_line("wattd_power", {"meter": meter, **tags}, fields,
                                      ts(t_s)))
        return self

    def readings(self, meter: str, start_s: float, stop_s: float, step_s: float,
                 power: float | None = None) -> JournalBuilder:
        """Readings every step from start to stop inclusive; power constant or = t."""
        n = round((stop_s - start_s) / step_s)
        for i in range(n + 1):
            t = start_s + i * step_s
            self.power(meter, t, t if power is None else power)
        return self

    def marker(self, verb: str, run: str, t_s: float, *, meter: str | None = None,
               phase: str | None = None, text: str = "", source: str = "127.0.0.1"
               ) -> JournalBuilder:
        tags = {"run": run, "verb": verb, "source": source}
        if meter:
            tags["meter"] = meter
        if phase:
            tags["phase"] = phase
        self.lines.append(format_line("wattd_marker", tags, {"text": text}, ts(t_s)))
        return self

    def run_point(self, run: str, meter: str, start_s: float, stop_s: float,
                  **fields: FieldValue) -> JournalBuilder:
        all_fields: dict[str, FieldValue] = {"energy_j": 0.0, "duration_s": stop_s - start_s,
                                             "start_ns": ts(start_s), **fields}
        self.lines.append(format_line("wattd_run", {"run": run, "meter": meter}, all_fields,
                                      ts(stop_s)))
        return self

    # -- the experiment's points, exactly as SPEC 3 defines them ------------------

    def result(self, run: str, t_s: float, start_s: float | None, *, tool: str = "ab",
               source: str = "127.0.0.1", tags: dict[str, str] | None = None,
               **values: float) -> JournalBuilder:
        """A ``wattd_result`` point: every result key a float, ``run_start_ns`` an
        integer (omitted when ``start_s`` is None)."""
        fields: dict[str, FieldValue] = {k: float(v) for k, v in values.items()}
        if start_s is not None:
            fields["run_start_ns"] = ts(start_s)
        head = {"run": run, "source": source, "tool": tool, **(tags or {})}
        self.lines.append(format_line("wattd_result", head, fields, ts(t_s)))
        return self

    def latency(self, run: str, t_s: float, start_s: float, distribution: dict[float, float],
                tags: dict[str, str] | None = None) -> JournalBuilder:
        """One ``wattd_latency`` point per percentile q (a tag), field ``ms``."""
        for q, ms in distribution.items():
            q_text = f"{q:g}"
            self.lines.append(format_line(
                "wattd_latency", {"run": run, "q": q_text, **(tags or {})},
                {"ms": float(ms), "run_start_ns": ts(start_s)}, ts(t_s)))
        return self

    def cpu(self, t_s: float, cpu_s: float, *, cpu_pct: float | None = None,
            rss_bytes: float = 50e6, host: str = "pi", target: str = "carddav",
            run: str | None = None, tags: dict[str, str] | None = None) -> JournalBuilder:
        """A ``wattd_cpu`` sample (``run`` and the run's tags while a run is open)."""
        head = {"host": host, "target": target, **(tags or {})}
        if run is not None:
            head["run"] = run
        fields: dict[str, FieldValue] = {"cpu_s": float(cpu_s), "rss_bytes": float(rss_bytes),
                                         "host_cpu_pct": 30.0, "procs": 2}
        if cpu_pct is not None:
            fields["cpu_pct"] = float(cpu_pct)
        self.lines.append(format_line("wattd_cpu", head, fields, ts(t_s)))
        return self

    def raw(self, line: str) -> JournalBuilder:
        self.lines.append(line)
        return self

    def write(self, directory: Path, segment: int = 1, *, gz: bool = False,
              torn: str | None = None) -> Path:
        """Write the lines collected so far as one segment and start afresh."""
        directory.mkdir(parents=True, exist_ok=True)
        data = "".join(line + "\n" for line in self.lines) + (torn or "")
        self.lines = []
        name = f"{segment:08d}.lp" + (".gz" if gz else "")
        path = directory / name
        if gz:
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.write(data)
        else:
            path.write_text(data, encoding="utf-8")
        return path


class PlannedRun:
    """One run of :func:`experiment_journal`, with the raw figures it journaled."""

    def __init__(self, name: str, group: str, start_s: float, stop_s: float, watts: float,
                 requests: int, time_per_request_ms: float, latency: dict[float, float],
                 cpu_cores: float) -> None:
        self.name, self.group = name, group
        self.start_s, self.stop_s, self.watts = start_s, stop_s, watts
        self.requests, self.time_per_request_ms = requests, time_per_request_ms
        self.latency, self.cpu_cores = latency, cpu_cores


QUANTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 100.0)


def experiment_journal(directory: Path, groups: dict[str, tuple[float, float, float]],
                       reps: int, *, requests: int = 1000, idle: bool = True,
                       sample_s: float = 0.5
                       ) -> tuple[list[PlannedRun], list[tuple[float, float]]]:
    """Runs NAME-1..NAME-reps per group, interleaved, each with energy (readings
    every 0.25 s, constant power: exact joules), its load results and latency
    distribution (no `requests` tag: the unit count is the result), and CPU samples
    of the server every `sample_s` across the whole timeline (tagged with the run
    inside it), never on a run boundary. groups: name -> (watts, ms per request,
    CPU cores busy). Returns the runs and the CPU samples (t_s, cpu_s)."""
    events: list[tuple[float, int, tuple[object, ...]]] = []
    runs: list[PlannedRun] = []
    t = 1.0
    if idle:
        events += [(1.125, 1, ("start", "idle")), (5.125, 1, ("stop", "idle"))]
        t = 6.0
    watts_at: list[tuple[float, float, float, float]] = []  # start, stop, W, cores
    for rep in range(1, reps + 1):
        for gi, (group, (watts, ms, cores)) in enumerate(groups.items()):
            wiggle = ((rep * 7 + gi * 3) % 5 - 2) / 100  # -2 % .. +2 %
            duration = round(requests * ms / 1000 / 4 * (1 + wiggle) * 4) / 4  # 0.25 s grid
            start = t + 0.125
            stop = start + duration
            tpr = ms * (1 + wiggle)
            latency = {q: tpr * (0.6 + 0.9 * (q / 100) ** 6) * (1 + (q == 100.0))
                       for q in QUANTILES}
            name = f"{group}-{rep}"
            runs.append(PlannedRun(name, group, start, stop, watts * (1 + wiggle / 2),
                                   requests, tpr, latency, cores * (1 - wiggle)))
            events.append((start, 1, ("start", name)))
            events.append((stop, 1, ("stop", name)))
            events.append((stop + 0.05, 2, ("result", runs[-1])))
            watts_at.append((start, stop, runs[-1].watts, runs[-1].cpu_cores))
            t = stop + 0.875
    end = t + 1.0
    idle_w = 2.7

    def power_at(x: float) -> float:
        return next((w for a, b, w, _ in watts_at if a - 0.125 <= x <= b + 0.125), idle_w)

    def cores_at(x: float) -> float:
        return next((c for a, b, _, c in watts_at if a <= x < b), 0.02)

    n = round(end / 0.25)
    for i in range(n + 1):
        x = i * 0.25
        events.append((x, 0, ("power", power_at(x))))
    samples: list[tuple[float, float]] = []
    cpu_total = 0.0
    x = 0.2
    step = 0.01
    previous = 0.0
    while x < end:
        # cpu_s: the exact integral of the busy cores, sampled every sample_s;
        # cpu_pct: over the interval before the sample, as the probe computes it.
        samples.append((x, cpu_total))
        inside = next((r for r in runs if r.start_s <= x <= r.stop_s), None)
        pct = 100 * (cpu_total - previous) / sample_s
        previous = cpu_total
        events.append((x, 3, ("cpu", x, cpu_total, inside.name if inside else None, pct)))
        for k in range(round(sample_s / step)):
            cpu_total += cores_at(x + k * step + step / 2) * step
        x = round(x + sample_s, 6)
    b = JournalBuilder()
    for when, _, item in sorted(events, key=lambda e: (e[0], e[1])):
        kind = item[0]
        if kind == "power":
            b.power("pi", when, float(item[1]))  # type: ignore[arg-type]
        elif kind in ("start", "stop"):
            b.marker(str(kind), str(item[1]), when)
        elif kind == "result":
            r = item[1]
            assert isinstance(r, PlannedRun)
            b.result(r.name, when, r.start_s, requests=r.requests, failed=0.0,
                     rps=r.requests / (r.stop_s - r.start_s),
                     time_per_request_ms=r.time_per_request_ms,
                     latency_ms_p50=r.latency[50.0], latency_ms_p95=r.latency[95.0],
                     latency_ms_p99=r.latency[99.0])
            b.latency(r.name, when, r.start_s, r.latency)
        else:
            _, at, total, run, pct = item
            b.cpu(float(at), float(total), cpu_pct=float(pct),  # type: ignore[arg-type]
                  run=run)  # type: ignore[arg-type]
    b.write(directory, 1)
    return runs, samples
