"""A fleet (SPEC 10): three real daemons, one run, one database adding it up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon_proc import journal_points
from tests.fleet_rig import FakeReplier, Fleet, duplicate_event, reply_energy, report_json, wattd
from tests.ports import free_port
from tests.prometheus_server import Prometheus
from tests.servers import InfluxDB1, VictoriaMetrics
from wattd.lineprotocol import format_line

POWERS = [10.0, 20.0, 30.0]


def test_one_multicast_marker_opens_and_closes_a_run_on_three_daemons(
        tmp_path: Path, influxdb_server: InfluxDB1, influx_db: str,
        victoria_server: VictoriaMetrics) -> None:
    """SPEC 10's done-when: three daemons, one `wattd mark` to the group; the printed
    total is the sum of the three stop replies, and both databases' reports say so."""
    secret = tmp_path / "secret"
    secret.write_text("fleet-shared-secret\n")
    group = f"239.192.92.88:{free_port('udp')}"
    markers = {"secret_file": str(secret),
               "multicast": {"group": group, "interface": "127.0.0.1"}}
    mark = ["mark", "--to", group, "--interface", "127.0.0.1", "--secret-file", str(secret)]
    with Fleet(tmp_path, influxdb_server, victoria_server, influx_db, POWERS,
               markers=markers, prometheus=True) as fleet, \
            Prometheus(tmp_path / "prom", [f"127.0.0.1:{p}" for p in fleet.metrics_ports]
                       ) as prom:
        fleet.wait_readings()
        out = wattd(*mark, "start", "fleet-1", "--expect", "3")
        assert out.returncode == 0, out.stderr
        starts = out.stdout.splitlines()
        assert len(starts) == 3
        repliers = [line.split()[0] for line in starts]
        assert len(set(repliers)) == 3  # each daemon answers from a socket of its own
        assert all(line.split()[1:4] == ["ok", "start", "fleet-1"] for line in starts)
        assert fleet.marker_ports not in [int(r.rsplit(":", 1)[1]) for r in repliers]

        # Prometheus scraped every daemon: its live power and its open run.
        power = prom.wait_for("wattd_power_watts", 3)
        by_meter = {s["metric"]["meter"]: float(s["value"][1]) for s in power}
        assert by_meter == pytest.approx(dict(zip(("pi1", "pi2", "pi3"), POWERS,
                                                  strict=True)), rel=0.03)
        prom.wait_for('wattd_run_open{run="fleet-1"} == 1', 3)

        # Duplicated multicast datagrams: the same reply again, no second effect.
        dup = duplicate_event(group, secret.read_bytes().strip(), "fleet-1", copies=3)
        assert sorted(dup) == sorted(repliers)
        for replies in dup.values():
            assert len(replies) >= 2  # answered again from the de-duplication cache
            assert len(set(replies)) == 1  # with the very same reply

        # A reply from outside --allow is ignored (a stranger answering first).
        with FakeReplier(group) as stranger:
            out = wattd(*mark, "stop", "fleet-1", "--expect", "3", "--allow", "127.0.0.1/32")
        assert stranger.answered
        assert out.returncode == 0, out.stderr
        assert "ignored 1 reply" in out.stderr
        *stops, total = out.stdout.splitlines()
        assert sorted(line.split()[0] for line in stops) == sorted(repliers)
        energies = [reply_energy(line) for line in stops]
        assert total.startswith("total ")
        printed = dict(kv.split("=") for kv in total.split()[1:])
        assert printed["meters"] == "3"
        assert printed["daemons"] == "3"
        assert float(printed["energy_j"]) == pytest.approx(sum(energies), rel=1e-8)

        # A daemon that never answers: named, exit 1, the others printed.
        absent = "127.0.0.9"
        out = wattd(*mark, "event", "after", "--expect", ",".join([*repliers, absent]),
                    "--timeout", "1.5")
        assert out.returncode == 1
        assert f"missing: {absent}" in out.stderr
        assert len(out.stdout.splitlines()) == 3

        last = prom.wait_for('wattd_last_run_energy_joules{run="fleet-1"}', 3)
        assert sum(float(s["value"][1]) for s in last) == pytest.approx(sum(energies), rel=1e-8)
        fleet.wait_delivered("fleet-1")
        for i in range(3):  # one event per daemon in its journal, though sent three times
            events = [p for p in journal_points(tmp_path / f"d{i + 1}" / "journal",
                                                "wattd_marker")
                      if p.tags.get("verb") == "event" and p.tags.get("run") == "fleet-1"]
            assert len(events) == 1
    victoria_server.flush()
    for source in (["--influx", influxdb_server.url, "--database", influx_db],
                   ["--influx", victoria_server.url, "--database", influx_db]):
        doc = report_json(*source)
        rows = {r["meter"]: r for r in doc["runs"] if r["run"] == "fleet-1"}
        assert sorted(rows) == ["pi1", "pi2", "pi3"]
        assert sorted(r["energy_j"] for r in rows.values()) == pytest.approx(sorted(energies),
                                                                            rel=1e-6)
        for meter, row in rows.items():
            assert row["tags"]["host"] == meter.replace("pi", "host")
        [total_row] = [t for t in doc["totals"] if t["run"] == "fleet-1"]
        assert total_row["meters"] == 3
        assert total_row["hosts"] == 3
        assert total_row["energy_j"] == pytest.approx(float(printed["energy_j"]), rel=1e-6)
        assert total_row["mean_w"] == pytest.approx(sum(POWERS), rel=0.05)
        assert "missing" not in total_row
    # The journal report gives the same totals over its own meter. (It integrates
    # over realtime stamps, the daemon over boot time: they agree to the rate
    # difference of the two clocks, which a shared test machine does not bound.)
    doc = report_json("--journal", str(tmp_path / "d2" / "journal"))
    [own] = [t for t in doc["totals"] if t["run"] == "fleet-1"]
    [own_row] = [r for r in doc["runs"] if r["run"] == "fleet-1"]
    assert own["meters"] == 1
    assert own["energy_j"] == own_row["energy_j"]
    assert own["energy_j"] == pytest.approx(rows["pi2"]["energy_j"], rel=0.01)


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


def test_runs_without_readings_are_missing_data_left_out_of_the_statistics(
        influxdb_server: InfluxDB1, influx_db: str, victoria_server: VictoriaMetrics) -> None:
    import urllib.request

    s = 1_000_000_000
    t0 = 1_700_000_000 * s
    lines = []
    for i, energy in enumerate((50.0, 60.0, 70.0, None, 0.0)):
        start = t0 + i * 100 * s
        fields: dict[str, float | int | bool] = {"duration_s": 10.0, "start_ns": start}
        if energy is None:  # today's daemon: no energy fields, the flag
            fields.update(samples=0, gap_s=10.0, no_readings=True)
        elif energy == 0.0:  # an older daemon's held "0 J" of a run with no reading
            fields.update(energy_j=0.0, mean_w=0.0, min_w=0.0, max_w=0.0, samples=0,
                          extrapolated_s=10.0, gap_s=10.0)
        else:
            fields.update(energy_j=energy, mean_w=energy / 10, min_w=1.0, max_w=9.0,
                          samples=100)
        lines.append(format_line("wattd_run", {"run": f"b-{i + 1}", "meter": "pi1"}, fields,
                                 start + 10 * s))
    status, _ = influxdb_server.write(influx_db, "\n".join(lines))
    assert status == 204
    req = urllib.request.Request(f"{victoria_server.url}/write?db={influx_db}",
                                 data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 204
    victoria_server.flush()
    for url in (influxdb_server.url, victoria_server.url):
        doc = report_json("--influx", url, "--database", influx_db)
        runs = {r["run"]: r for r in doc["runs"]}
        for name in ("b-4", "b-5"):
            assert runs[name]["energy_j"] is None, (url, runs[name])
            assert runs[name]["flags"]["no_readings"] is True, url
            assert runs[name]["group"] is None
        (group,) = doc["groups"]
        assert (group["n"], group["no_readings"]) == (3, 2), url
        assert group["mean_energy_j"] == pytest.approx(60.0), url
        totals = {t["run"]: t for t in doc["totals"]}
        assert totals["b-4"]["energy_j"] is None
        assert totals["b-5"]["energy_j"] is None


def test_report_from_an_unreachable_or_empty_database_fails_clearly(
        influxdb_server: InfluxDB1, influx_db: str) -> None:
    out = wattd("report", "--influx", f"http://127.0.0.1:{free_port()}", "--database", "x")
    assert out.returncode == 1
    assert "cannot reach" in out.stderr
    out = wattd("report", "--influx", influxdb_server.url, "--database", influx_db)
    assert out.returncode == 1
    assert "no wattd_run points" in out.stderr
    out = wattd("report", "--influx", influxdb_server.url)
    assert out.returncode == 2
    assert "is an InfluxDB: give --database DB" in out.stderr


def test_multicast_without_secret_or_allow_refuses_to_start(tmp_path: Path) -> None:
    from tests.daemon_proc import write_config

    cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": "/dev/none"}],
                       markers={"listen": [f"127.0.0.1:{free_port('udp')}"],
                                "multicast": {"group": f"239.192.92.88:{free_port('udp')}",
                                              "interface": "127.0.0.1"}})
    out = wattd("run", "-c", str(cfg), "--simulate", timeout_s=60)
    assert out.returncode == 2
    assert "multicast markers need markers.secret_file or markers.allow" in out.stderr
    assert "Traceback" not in out.stderr
    (tmp_path / "bad").mkdir()
    bad = write_config(tmp_path / "bad", [{"name": "pi", "driver": "gb202", "port": "/dev/none"}],
                       markers={"allow": ["127.0.0.0/8"],
                                "multicast": {"group": "10.1.2.3:9288"}})  # not a group
    out = wattd("run", "-c", str(bad), "--simulate", timeout_s=60)
    assert out.returncode == 2
    assert "not an IPv4 multicast address" in out.stderr
