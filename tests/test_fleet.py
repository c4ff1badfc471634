"""A fleet (SPEC 10): three real daemons, one run, one database adding it up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fleet_rig import Fleet, reply_energy, report_json, wattd
from tests.servers import InfluxDB1, VictoriaMetrics
from wattd.lineprotocol import format_line

POWERS = [10.0, 20.0, 30.0]


def test_three_daemons_one_run_the_database_report_adds_it_up(
        tmp_path: Path, influxdb_server: InfluxDB1, influx_db: str,
        victoria_server: VictoriaMetrics) -> None:
    with Fleet(tmp_path, influxdb_server, victoria_server, influx_db, POWERS) as fleet:
        fleet.wait_readings()
        for port in fleet.marker_ports:
            out = wattd("mark", "start", "fleet-1", "--to", f"127.0.0.1:{port}")
            assert out.returncode == 0, out.stderr
        stops = []
        for port in fleet.marker_ports:
            out = wattd("mark", "stop", "fleet-1", "--to", f"127.0.0.1:{port}")
            assert out.returncode == 0, out.stderr
            stops.append(reply_energy(out.stdout))
        fleet.wait_delivered("fleet-1")
    victoria_server.flush()
    for source in (["--influx", influxdb_server.url, "--database", influx_db],
                   ["--influx", victoria_server.url, "--database", influx_db]):
        doc = report_json(*source)
        rows = {r["meter"]: r for r in doc["runs"] if r["run"] == "fleet-1"}
        assert sorted(rows) == ["pi1", "pi2", "pi3"]
        for meter, energy in zip(("pi1", "pi2", "pi3"), stops, strict=True):
            assert rows[meter]["energy_j"] == pytest.approx(energy, rel=1e-6)
            assert rows[meter]["tags"]["host"] == meter.replace("pi", "host")
        [total] = [t for t in doc["totals"] if t["run"] == "fleet-1"]
        assert total["meters"] == 3
        assert total["hosts"] == 3
        assert total["energy_j"] == pytest.approx(sum(stops), rel=1e-6)
        assert total["mean_w"] == pytest.approx(sum(POWERS), rel=0.05)
        assert "missing" not in total
    # The journal report gives the same totals over its own meter.
    doc = report_json("--journal", str(tmp_path / "d2" / "journal"))
    [own] = [t for t in doc["totals"] if t["run"] == "fleet-1"]
    assert own["meters"] == 1
    assert own["energy_j"] == pytest.approx(stops[1], rel=1e-6)


def test_a_meter_without_its_wattd_run_point_is_missing_not_zero(
        influxdb_server: InfluxDB1, influx_db: str) -> None:
    s = 1_000_000_000
    t0 = 1_700_000_000 * s
    lines = []
    for run, start, meters in (("a-1", t0, ("pi1", "pi2")), ("a-2", t0 + 100 * s, ("pi1",))):
        for meter in meters:
            lines.append(format_line("wattd_run", {"run": run, "meter": meter},
                                     {"energy_j": 50.0, "duration_s": 10.0, "mean_w": 5.0,
                                      "min_w": 5.0, "max_w": 5.0, "samples": 100,
                                      "start_ns": start}, start + 10 * s))
    status, _ = influxdb_server.write(influx_db, "\n".join(lines))
    assert status == 204
    doc = report_json("--influx", influxdb_server.url, "--database", influx_db)
    totals = {t["run"]: t for t in doc["totals"]}
    assert totals["a-1"]["energy_j"] == pytest.approx(100.0)
    assert totals["a-2"]["energy_j"] is None  # never 50 + a fake 0
    assert totals["a-2"]["missing"] == ["pi2"]
    assert totals["a-2"]["partial_energy_j"] == pytest.approx(50.0)
    missing = [r for r in doc["runs"] if r["run"] == "a-2" and r["meter"] == "pi2"]
    assert missing
    assert missing[0]["energy_j"] is None
    table = wattd("report", "--influx", influxdb_server.url, "--database", influx_db)
    assert table.returncode == 0, table.stderr
    assert "pi2" in table.stdout.split("Totals per run")[1]


def test_report_from_an_unreachable_database_fails_clearly() -> None:
    from tests.ports import free_port

    out = wattd("report", "--influx", f"http://127.0.0.1:{free_port()}", "--database", "x")
    assert out.returncode == 1
    assert "cannot reach" in out.stderr
