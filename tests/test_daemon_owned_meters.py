"""`wattd run` end to end with the SPEC 8 meters: a real daemon process, its journal.

Each driver under ``--simulate`` (pty, hwmon directory, loopback HTTP servers the
daemon starts itself) gives exact readings in the journal; a real plug server run
by the test (Shelly Gen2 with digest auth, power varying) polled once a second
feeds a 3 s run whose energy is the interpolated integral of the journaled
readings, with the stop reply waiting for the poll after the stop.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProc, free_udp_port, journal_points, write_config
from wattd.energy import integrate
from wattd.markers.client import MarkerClient
from wattd.simulator.plug_http import PlugModel, PlugServer


def _points(journal: Path, meter: str) -> list[object]:
    return [p for p in journal_points(journal, "wattd_power") if p.tags.get("meter") == meter]


@pytest.mark.parametrize(("meter", "power_w", "voltage_v", "counter"), [
    ({"driver": "mcp39f511n", "port": "/dev/ttyACM-none", "channel": 2}, 60.0, 230.0, True),
    ({"driver": "um", "port": "/dev/rfcomm-none"}, 3.5, 5.1, True),
    ({"driver": "hwmon", "sensor": "ina226"}, 3.25, 5.1, False),
    ({"driver": "shelly", "url": "http://plug.invalid"}, 40.0, 230.0, True),
    ({"driver": "tasmota", "url": "http://tasmota.invalid"}, 41.0, 230.0, True),
])
def test_simulated_meter_exact_readings_in_the_journal(tmp_path: Path, meter: dict[str, object],
                                                       power_w: float, voltage_v: float,
                                                       counter: bool) -> None:
    cfg = write_config(tmp_path, [{"name": "m", "power_w": power_w, "tags": {"desk": "3"},
                                   **meter}])
    journal = tmp_path / "journal"
    with DaemonProc(cfg) as daemon:
        daemon.wait_until(lambda: len(_points(journal, "m")) >= 4, what="4 readings")
        assert daemon.stop() == 0
    points = _points(journal, "m")
    assert all(p.fields["power_w"] == power_w for p in points)  # type: ignore[attr-defined]
    assert all(p.fields["voltage_v"] == pytest.approx(voltage_v)  # type: ignore[attr-defined]
               for p in points)
    assert all(p.tags["desk"] == "3" for p in points)  # type: ignore[attr-defined]
    stamps = [p.t_ns for p in points]  # type: ignore[attr-defined]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time_ns()) < 60e9
    has_energy = ["energy_j" in p.fields for p in points]  # type: ignore[attr-defined]
    # (an MCP counter still at 0 on the first poll is taken as not accumulating yet)
    assert all(has_energy[1:]) if counter else not any(has_energy)


class WavePower:
    """Power that changes every second (so interpolation matters)."""

    def power_at(self, t_s: float) -> float:
        return 30.0 + 20.0 * math.sin(t_s * 1.3)


def test_one_second_plug_run_energy_is_the_interpolated_integral(tmp_path: Path) -> None:
    model = PlugModel("shelly", WavePower(), gen=2, password="plug-pw", refresh_s=1.0)
    model_t0_ns = time.time_ns()  # the model's time 0 (its monotonic start), on realtime
    server = PlugServer(model).start()
    secret = tmp_path / "plug.password"
    secret.write_text("plug-pw\n")
    port = free_udp_port()
    try:
        cfg = write_config(tmp_path, [{"name": "plug", "driver": "shelly", "url": server.url,
                                       "password_file": str(secret)}],
                           markers={"listen": [f"127.0.0.1:{port}"]})
        journal = tmp_path / "journal"
        with DaemonProc(cfg, simulate=False) as daemon:
            daemon.wait_until(lambda: len(_points(journal, "plug")) >= 3, what="3 readings")
            with MarkerClient(f"127.0.0.1:{port}", timeout_s=10.0) as client:
                start = client.send("start", "plugrun")
                assert start.ok, start
                time.sleep(3.0)
                stop = client.send("stop", "plugrun")
                reply_ns = time.time_ns()
                assert stop.ok, stop
                status = client.send("status")
            start_ns = int(start.fields["start_ns"])
            stop_ns = start_ns + round(stop.number("duration_s") * 1e9)

            def after_stop_journaled() -> bool:
                return any(p.t_ns > stop_ns for p in _points(journal, "plug"))  # type: ignore[attr-defined]

            daemon.wait_until(after_stop_journaled, what="the poll after the stop journaled")
            assert daemon.stop() == 0
    finally:
        server.stop()
    readings = [(p.t_ns, float(p.fields["power_w"]))  # type: ignore[attr-defined]
                for p in _points(journal, "plug")]
    exact = integrate(readings, start_ns, stop_ns).energy_j
    assert stop.number("energy_j") == pytest.approx(exact, rel=1e-3)
    assert "extrapolated_s" not in stop.fields  # the reply waited for the bracketing poll
    first_after = min(t for t, _ in readings if t > stop_ns)
    assert reply_ns > first_after
    assert "gap_s" not in stop.fields
    # The plug's own counter (aenergy.total: the energy it integrates continuously, in Wh
    # to 3 decimals) interpolated at the boundaries gives the true energy of the run, which
    # the 1 s samples of power only approximate.
    a_s, b_s = (start_ns - model_t0_ns) / 1e9, (stop_ns - model_t0_ns) / 1e9
    true_j = 30.0 * (b_s - a_s) + 20.0 / 1.3 * (math.cos(1.3 * a_s) - math.cos(1.3 * b_s))
    assert stop.number("counter_energy_j") == pytest.approx(true_j, abs=15.0)  # seen: <= 6 J
    assert 2.9 < stop.number("duration_s") < 10.0  # 3 s between the markers, plus any delay
    assert status.status is not None
    plug = status.status["meters"]["plug"]
    assert plug["driver"] == "shelly"
    assert plug["gen"] == 2
    assert plug["frames_bad"] == 0
    assert plug["poll_interval_s"] == 1.0
