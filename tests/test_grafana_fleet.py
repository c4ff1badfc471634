"""The dashboard's fleet row against a real InfluxDB 1.6 holding two daemons' data.

Each "daemon" is what a daemon leaves: its own journal (readings of its meter,
tagged with its host, and its wattd_run point of the shared run) delivered by
its own v1 delivery loop into the one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import InfluxDB1
from tests.test_grafana_queries import T0, S, grafana_substitute
from wattd.config import InfluxConfig, JournalConfig
from wattd.energy import integrate
from wattd.grafana.dashboard import FLEET_ENERGY_QUERY, FLEET_POWER_QUERY
from wattd.journal.writer import Journal
from wattd.lineprotocol import format_line
from wattd.readings import Reading
from wattd.sinks import make_delivery

PERIOD = 100_000_000
DAEMONS = {"pi-a": ("host-a", 3.0, 5.0), "pi-b": ("host-b", 4.0, 7.0)}  # idle W, run W
RUN = ("fleet-run", T0 + 10 * S, T0 + 20 * S)


def _daemon_lines(meter: str) -> tuple[list[str], float]:
    host, idle_w, run_w = DAEMONS[meter]
    name, start, stop = RUN
    readings = []
    for t in range(T0, T0 + 30 * S + 1, PERIOD):
        inside = start <= t < stop
        tags = {"host": host, **({"run": name} if inside else {})}
        power = run_w if inside else idle_w
        readings.append(Reading(meter, t, t, power, 230.0, power / 230.0, power, 1.0, None,
                                tags=tags))
    energy = integrate(((r.t_ns, r.power_w) for r in readings if r.power_w is not None),
                       start, stop)
    run_line = format_line("wattd_run", {"run": name, "meter": meter},
                           {"energy_j": energy.energy_j, "duration_s": energy.duration_s,
                            "mean_w": energy.mean_w, "samples": energy.samples,
                            "start_ns": start}, stop)
    return [r.to_line() for r in readings] + [run_line], energy.energy_j


async def _deliver(journal_dir: Path, lines: list[str], url: str, db: str) -> None:
    journal = Journal(JournalConfig(dir=str(journal_dir)))
    await journal.open()
    try:
        await journal.append(lines, durable=True)
        delivery = make_delivery(InfluxConfig(url=url, api="v1", database=db,
                                              flush_interval_s=0.0), journal)
        delivery.start()
        await delivery.stop(30.0)
        assert delivery.status()["backlog_bytes"] == 0
    finally:
        await journal.close()


@pytest.fixture(scope="module")
def two_daemons(influxdb_server: InfluxDB1, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[InfluxDB1, str, dict[str, float]]]:
    db = "wattd_grafana_fleet"
    influxdb_server.create_database(db)
    energies = {}
    for meter in DAEMONS:
        lines, energies[meter] = _daemon_lines(meter)
        asyncio.run(_deliver(tmp_path_factory.mktemp(meter), lines, influxdb_server.url, db))
    yield influxdb_server, db, energies
    influxdb_server.query(f'DROP DATABASE "{db}"')


def _query(server: InfluxDB1, db: str, q: str, **subst: object) -> list[dict[str, object]]:
    res = server.query(grafana_substitute(q, **subst), db, epoch="ms")
    return list(res["results"][0].get("series", []))


def test_fleet_total_power_sums_every_meter_and_host(
        two_daemons: tuple[InfluxDB1, str, dict[str, float]]) -> None:
    server, db, _ = two_daemons
    [series] = _query(server, db, FLEET_POWER_QUERY)
    values = dict(series["values"])  # type: ignore[call-overload]
    assert values[(T0 + 5 * S) // 1_000_000] == pytest.approx(3.0 + 4.0)  # both idle
    assert values[(T0 + 15 * S) // 1_000_000] == pytest.approx(5.0 + 7.0)  # both in the run
    [one] = _query(server, db, FLEET_POWER_QUERY, meter=["pi-b"])
    assert dict(one["values"])[(T0 + 15 * S) // 1_000_000] == pytest.approx(7.0)  # type: ignore[call-overload]


def test_fleet_energy_per_run_is_the_sum_over_meters_and_hosts(
        two_daemons: tuple[InfluxDB1, str, dict[str, float]]) -> None:
    server, db, energies = two_daemons
    [series] = _query(server, db, FLEET_ENERGY_QUERY)
    assert series["tags"] == {"run": "fleet-run"}
    row = dict(zip(series["columns"], series["values"][0], strict=True))  # type: ignore[call-overload, index]
    assert row["energy_j"] == pytest.approx(sum(energies.values()), rel=1e-12)
    # 9.9 s at the run power, then 100 ms ramping down to idle, on each meter.
    assert row["energy_j"] == pytest.approx(5.0 * 9.9 + 4.0 * 0.1 + 7.0 * 9.9 + 5.5 * 0.1)
    assert row["meters"] == 2


def test_fleet_energy_and_runs_table_say_a_meter_had_no_readings(
        influxdb_server: InfluxDB1, tmp_path: Path) -> None:
    from wattd.grafana.dashboard import RUNS_TABLE_QUERY

    db = "wattd_grafana_silent"
    influxdb_server.create_database(db)
    try:
        name, start, stop = "silent-run", T0 + 10 * S, T0 + 20 * S
        lines, energy = _daemon_lines("pi-a")
        lines = [line.replace("fleet-run", name) for line in lines]
        asyncio.run(_deliver(tmp_path / "a", lines, influxdb_server.url, db))
        # pi-b's daemon: its port delivered nothing, its point has no energy at all.
        silent = format_line("wattd_run", {"run": name, "meter": "pi-b"},
                             {"duration_s": 10.0, "samples": 0, "start_ns": start,
                              "gap_s": 10.0, "no_readings": True}, stop)
        asyncio.run(_deliver(tmp_path / "b", [silent], influxdb_server.url, db))
        [series] = _query(influxdb_server, db, FLEET_ENERGY_QUERY)
        row = dict(zip(series["columns"], series["values"][0], strict=True))  # type: ignore[call-overload, index]
        assert row["energy_j"] == pytest.approx(energy, rel=1e-12)  # pi-a's, never + 0
        assert (row["meters"], row["no_readings"]) == (1, 1)  # the sum says it misses one
        table = {s["tags"]["meter"]: dict(zip(s["columns"], s["values"][0], strict=True))  # type: ignore[call-overload, index]
                 for s in _query(influxdb_server, db, RUNS_TABLE_QUERY)}
        assert table["pi-b"]["no_readings"] is True
        assert table["pi-b"]["energy_j"] is None
        assert table["pi-a"]["no_readings"] is None
    finally:
        influxdb_server.query(f'DROP DATABASE "{db}"')
