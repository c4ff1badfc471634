"""Every dashboard query, with Grafana's macros substituted, against a real InfluxDB 1.6.

The data goes the way wattd sends it: points written to a wattd journal
(readings via ``Reading.to_line``, run results integrated with
``wattd.energy.integrate``), delivered by the v1 sink's delivery loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import InfluxDB1
from wattd.config import InfluxConfig, JournalConfig
from wattd.energy import integrate
from wattd.grafana.dashboard import (
    CURRENT_QUERY,
    ENERGY_PER_RUN_QUERY,
    MARKERS_QUERY,
    METER_VARIABLE_QUERY,
    POWER_FACTOR_QUERY,
    POWER_QUERY,
    RUN_REGIONS_QUERY,
    RUN_VARIABLE_QUERY,
    RUNS_TABLE_QUERY,
    VOLTAGE_QUERY,
    build_dashboard,
    iter_queries,
)
from wattd.journal.reader import iter_lines
from wattd.journal.writer import Journal
from wattd.lineprotocol import FieldValue, format_line, parse_line
from wattd.readings import Reading
from wattd.sinks import make_delivery

S = 1_000_000_000
T0 = 1_700_000_000 * S  # data window [T0, T0 + 60 s]
PERIOD = 100_000_000  # a reading every 100 ms

ALL = object()


# -- Grafana's substitution -----------------------------------------------------

_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def escape_regex(value: str) -> str:
    """@grafana/data escapeRegex: what the InfluxDB datasource applies to multi-value vars."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def var_value(selected: object) -> str:
    if selected is ALL:
        return ".*"  # the variables' allValue
    assert isinstance(selected, list)
    if len(selected) == 1:
        return escape_regex(selected[0])
    return "(" + "|".join(escape_regex(v) for v in selected) + ")"


def grafana_substitute(query: str, *, start_ns: int = T0, stop_ns: int = T0 + 60 * S,
                       interval: str = "1s", meter: object = ALL, run: object = ALL) -> str:
    """What Grafana sends for a dashboard query (InfluxQL, time in ms)."""
    out = query.replace("$timeFilter",
                        f"time >= {start_ns // 1_000_000}ms and time <= {stop_ns // 1_000_000}ms")
    out = out.replace("$__interval", interval)
    out = out.replace("$meter", var_value(meter)).replace("$run", var_value(run))
    assert not re.search(r"\$[A-Za-z_]", out), out  # nothing left unsubstituted
    return out


# -- data that wattd wrote --------------------------------------------------------

@dataclass
class Run:
    name: str
    meter: str
    start_ns: int
    stop_ns: int
    power_w: float
    tags: dict[str, str]
    phase: str | None = None
    aborted: bool = False


RUNS = [
    Run("py-500k", "pi", T0 + 10 * S, T0 + 25 * S, 5.0, {"lang": "python"}),
    Run("rust-500k", "pi", T0 + 30 * S, T0 + 40 * S, 4.0, {"lang": "rust"}),
    Run("rust-500k", "pi", T0 + 30 * S, T0 + 32 * S, 4.0, {"lang": "rust"}, phase="warmup"),
    Run("crash.v2/a", "laptop", T0 + 45 * S, T0 + 50 * S, 30.0, {"lang": "go"}, aborted=True),
]


def readings() -> list[Reading]:
    out = []
    for t in range(T0, T0 + 60 * S + 1, PERIOD):
        for meter, base_w, volts in (("pi", 3.0, 229.0), ("laptop", 20.0, 231.0)):
            power, tags = base_w, {"host": meter}
            for run in RUNS:
                if run.meter == meter and run.start_ns <= t < run.stop_ns:
                    power = run.power_w
                    tags.update(run.tags, run=run.name)
                    if run.phase:
                        tags["phase"] = run.phase
            out.append(Reading(meter, t, t, power, volts, power / volts, power / 0.9 / 1.0,
                               0.9, None, tags=tags))
    return out


def run_line(run: Run, samples: list[Reading]) -> str:
    tags = {**run.tags, "run": run.name, "meter": run.meter}
    fields: dict[str, FieldValue] = {}
    if run.phase:
        tags["phase"] = run.phase
    if run.aborted:
        fields["duration_s"] = (run.stop_ns - run.start_ns) / S
        fields["aborted"] = True
    else:
        energy = integrate(((r.t_ns, r.power_w) for r in samples if r.meter == run.meter
                            and r.power_w is not None), run.start_ns, run.stop_ns)
        fields.update(energy_j=energy.energy_j, duration_s=energy.duration_s,
                      mean_w=energy.mean_w, min_w=energy.min_w, max_w=energy.max_w,
                      samples=energy.samples)
    fields["start_ns"] = run.start_ns
    return format_line("wattd_run", tags, fields, run.stop_ns)


def marker_lines() -> list[str]:
    out = []
    for run in RUNS:
        if run.phase:
            continue
        text = " ".join(f"{k}={v}" for k, v in run.tags.items())
        for verb, t in (("start", run.start_ns), ("abort" if run.aborted else "stop",
                                                   run.stop_ns)):
            out.append(format_line("wattd_marker", {"run": run.name, "verb": verb,
                                                    "source": "192.0.2.7"},
                                   {"text": text}, t))
    return out


@dataclass
class Loaded:
    server: InfluxDB1
    db: str
    journal_dir: Path

    def query(self, q: str, **subst: Any) -> list[dict[str, Any]]:
        res = self.server.query(grafana_substitute(q, **subst), self.db, epoch="ms")
        return list(res["results"][0].get("series", []))

    def journal_runs(self) -> list[dict[str, Any]]:
        out = []
        for _, line in iter_lines(self.journal_dir):
            point = parse_line(line)
            if point.measurement == "wattd_run":
                out.append({**point.tags, **point.fields, "time_ns": point.t_ns})
        return out


async def deliver(journal_dir: Path, url: str, db: str) -> None:
    journal = Journal(JournalConfig(dir=str(journal_dir)))
    await journal.open()
    try:
        data = readings()
        await journal.append([r.to_line() for r in data])
        await journal.append(marker_lines() + [run_line(run, data) for run in RUNS],
                             durable=True)
        delivery = make_delivery(InfluxConfig(url=url, api="v1", database=db,
                                              flush_interval_s=0.0), journal)
        delivery.start()
        await delivery.stop(30.0)
        status = delivery.status()
        assert status["backlog_bytes"] == 0, status
    finally:
        await journal.close()


@pytest.fixture(scope="module")
def loaded(influxdb_server: InfluxDB1, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Loaded]:
    import asyncio

    db = "wattd_grafana"
    influxdb_server.create_database(db)
    journal_dir = tmp_path_factory.mktemp("journal")
    asyncio.run(deliver(journal_dir, influxdb_server.url, db))
    yield Loaded(influxdb_server, db, journal_dir)
    influxdb_server.query(f'DROP DATABASE "{db}"')


# -- the tests ---------------------------------------------------------------------

def test_every_dashboard_query_runs(loaded: Loaded) -> None:
    queries = list(iter_queries(build_dashboard()))
    assert len(queries) == 12  # 10, and the fleet row's two (SPEC 10)
    for where, query in queries:
        for meter, run in ((ALL, ALL), (["pi"], ALL), (["pi", "laptop"], ["rust-500k"])):
            # Raises on any statement error (a macro Grafana would leave, bad syntax).
            loaded.query(query, meter=meter, run=run)
        if "wattd_" in query and "SHOW" not in query:
            assert loaded.query(query), f"{where} returns nothing: {query}"


def test_power_per_meter(loaded: Loaded) -> None:
    series = loaded.query(POWER_QUERY)
    assert {s["tags"]["meter"] for s in series} == {"pi", "laptop"}
    by_meter = {s["tags"]["meter"]: s for s in series}
    laptop = [v[1] for v in by_meter["laptop"]["values"]]
    assert len(laptop) == 61  # one per 1 s bucket over [T0, T0 + 60 s]
    assert set(laptop[:45]) == {20.0}
    pi = dict(by_meter["pi"]["values"])
    assert pi[(T0 + 5 * S) // 1_000_000] == pytest.approx(3.0)
    assert pi[(T0 + 15 * S) // 1_000_000] == pytest.approx(5.0)  # inside py-500k
    assert pi[(T0 + 35 * S) // 1_000_000] == pytest.approx(4.0)  # inside rust-500k
    only_pi = loaded.query(POWER_QUERY, meter=["pi"])
    assert [s["tags"]["meter"] for s in only_pi] == ["pi"]
    # $timeFilter really filters.
    assert loaded.query(POWER_QUERY, start_ns=T0 - 600 * S, stop_ns=T0 - 60 * S) == []


@pytest.mark.parametrize(("query", "pi", "laptop"), [
    (VOLTAGE_QUERY, 229.0, 231.0),
    (POWER_FACTOR_QUERY, 0.9, 0.9),
])
def test_voltage_and_power_factor(loaded: Loaded, query: str, pi: float, laptop: float) -> None:
    series = {s["tags"]["meter"]: [v[1] for v in s["values"]] for s in loaded.query(query)}
    assert series["pi"] == pytest.approx([pi] * len(series["pi"]))
    assert series["laptop"] == pytest.approx([laptop] * len(series["laptop"]))


def test_current(loaded: Loaded) -> None:
    series = {s["tags"]["meter"]: [v[1] for v in s["values"]]
              for s in loaded.query(CURRENT_QUERY)}
    assert series["laptop"][0] == pytest.approx(20.0 / 231.0)


def _journal_energy(loaded: Loaded, *, whole_runs: bool) -> dict[tuple[str, str], float]:
    return {(r["run"], r["meter"]): float(r["energy_j"]) for r in loaded.journal_runs()
            if "energy_j" in r and (not whole_runs or "phase" not in r)}


def test_energy_per_run_equals_journal(loaded: Loaded) -> None:
    expected = _journal_energy(loaded, whole_runs=True)
    # 14.9 s at 5 W, then the last 100 ms interpolated down to the 3 W reading at the stop.
    assert expected[("py-500k", "pi")] == pytest.approx(5.0 * 14.9 + 4.0 * 0.1, rel=1e-9)
    got = {(s["tags"]["run"], s["tags"]["meter"]): s["values"][0][1]
           for s in loaded.query(ENERGY_PER_RUN_QUERY)}
    assert got == expected  # no phase, no aborted run (it has no energy)
    rust = loaded.query(ENERGY_PER_RUN_QUERY, run=["rust-500k"])
    assert [s["tags"]["run"] for s in rust] == ["rust-500k"]


def test_runs_table_equals_journal(loaded: Loaded) -> None:
    series = loaded.query(RUNS_TABLE_QUERY)
    rows = []
    for s in series:
        for values in s["values"]:
            rows.append({**s["tags"], **dict(zip(s["columns"], values, strict=True))})
    journal = loaded.journal_runs()
    assert len(rows) == len(journal) == 4
    key = lambda r: (r["run"], r["meter"], r.get("phase") or "")  # noqa: E731
    by_key = {key(r): r for r in rows}
    for jr in journal:
        row = by_key[key(jr)]
        assert row["time"] == jr["time_ns"] // 1_000_000
        assert row["lang"] == jr["lang"]  # user tags become columns
        for name in ("energy_j", "duration_s", "mean_w", "min_w", "max_w", "samples",
                     "aborted"):
            assert row[name] == jr.get(name), name
    crash = by_key[("crash.v2/a", "laptop", "")]
    assert crash["aborted"] is True
    assert crash["energy_j"] is None
    # Selecting one run by a name full of regex characters: Grafana's escaping works.
    only = loaded.query(RUNS_TABLE_QUERY, run=["crash.v2/a"])
    assert [s["tags"]["run"] for s in only] == ["crash.v2/a"]


def test_run_regions_annotation(loaded: Loaded) -> None:
    series = loaded.query(RUN_REGIONS_QUERY)
    assert len(series) == 1
    cols = series[0]["columns"]
    rows = [dict(zip(cols, v, strict=True)) for v in series[0]["values"]]
    regions = {r["run"]: (r["start_ms"], r["stop_ms"]) for r in rows}
    assert regions == {run.name: (run.start_ns / 1e6, run.stop_ns / 1e6)
                       for run in RUNS if not run.phase}
    for row in rows:
        assert row["stop_ms"] == row["time"]  # stop = the point's own time


def test_markers_annotation(loaded: Loaded) -> None:
    series = loaded.query(MARKERS_QUERY, run=["py-500k"])
    rows = [dict(zip(series[0]["columns"], v, strict=True)) for v in series[0]["values"]]
    assert [(r["verb"], r["time"]) for r in rows] == [
        ("start", (T0 + 10 * S) // 1_000_000), ("stop", (T0 + 25 * S) // 1_000_000)]
    assert rows[0]["text"] == "lang=python"


def _tag_values(loaded: Loaded, query: str, **subst: Any) -> set[str]:
    return {v[1] for s in loaded.query(query, **subst) for v in s["values"]}


def test_variables(loaded: Loaded) -> None:
    assert _tag_values(loaded, METER_VARIABLE_QUERY) == {"pi", "laptop"}
    assert _tag_values(loaded, RUN_VARIABLE_QUERY) == {"py-500k", "rust-500k", "crash.v2/a"}
    assert _tag_values(loaded, RUN_VARIABLE_QUERY, meter=["pi"]) == {"py-500k", "rust-500k"}
