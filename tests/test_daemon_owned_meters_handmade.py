"""A real `wattd run` (no --simulate) reading all five SPEC 8 meters at once from
answers written by hand from the protocol facts (not by wattd's encoders): a pty
answering MCP39F511N register reads and UM polls with fixed bytes, a directory of
hwmon files, and loopback HTTP servers returning fixed Shelly Gen1 and Tasmota
JSON. The journal must hold exactly the values those answers carry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_proc import DaemonProc, journal_points, write_config
from tests.test_protocols_owned_meters import mcp_energy_reply, mcp_output_reply, um_frame
from wattd.protocols.base import SerialSettings
from wattd.simulator.pty_server import PtyMeterServer


class FixedAnswers:
    """A 'chip' that answers every complete request with fixed bytes."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self._buf = b""

    def receive(self, data: bytes, t_s: float) -> list[bytes]:
        self._buf += data
        out = []
        progress = True
        while progress:
            progress = False
            for request, answer in self.answers.items():
                if self._buf.startswith(request):
                    self._buf = self._buf[len(request):]
                    out.append(answer)
                    progress = True
        if self._buf and not any(r.startswith(self._buf[:len(r)]) for r in self.answers):
            self._buf = self._buf[1:]
        return out


def _checksummed(body: bytes) -> bytes:
    return body + bytes([sum(body) & 0xFF])


def _json_server(routes: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = routes.get(self.path)
            status = 200 if body is not None else 404
            body = body if body is not None else b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    return server


@pytest.fixture
def stoppers() -> Iterator[list[Any]]:
    items: list[Any] = []
    yield items
    for item in items:
        item()


def test_handmade_answers_reach_the_journal_exactly(tmp_path: Path,
                                                     stoppers: list[Any]) -> None:
    # MCP39F511N: set pointer 0x0002, read 28 bytes / set pointer 0x002E, read 16 bytes.
    mcp = FixedAnswers({
        _checksummed(bytes([0xA5, 0x08, 0x41, 0x00, 0x02, 0x4E, 28])): mcp_output_reply(
            status=1 << 4, volts_x10=2287, hz_x1000=49987, pf1=31130, amps1=1904,
            watts1_x100=4123),
        _checksummed(bytes([0xA5, 0x08, 0x41, 0x00, 0x2E, 0x4E, 16])): mcp_energy_reply(777),
    })
    mcp_pty = PtyMeterServer(mcp, SerialSettings(115200), link_path=tmp_path / "acm0").start()
    stoppers.append(mcp_pty.stop)
    um = FixedAnswers({b"\xf0": um_frame(0x09C9, 5087, 6021, 3063, mwh=1234)})  # UM25C
    um_pty = PtyMeterServer(um, SerialSettings(9600), link_path=tmp_path / "rfcomm0").start()
    stoppers.append(um_pty.stop)
    hwmon = tmp_path / "hwmon4"
    hwmon.mkdir()
    (hwmon / "name").write_text("ina219\n")
    (hwmon / "in1_input").write_text("5012\n")
    (hwmon / "curr1_input").write_text("498\n")  # no power1_input: 5.012 V x 0.498 A
    shelly = _json_server({
        "/shelly": b'{"type":"SHPLG-S","mac":"A4CF12F45678","auth":false,"fw":"x"}',
        "/status": b'{"relays":[{"ison":true}],"meters":[{"power":23.45,"is_valid":true,'
                   b'"total":4567}]}'})
    stoppers.append(shelly.shutdown)
    tasmota = _json_server({"/cm?cmnd=Status%2010": (
        b'{"StatusSNS":{"Time":"2024-05-01T10:00:00","ENERGY":{"TotalStartTime":'
        b'"2024-01-01T00:00:00","Total":3.217,"Yesterday":0.5,"Today":0.1,"Power":57,'
        b'"ApparentPower":61,"ReactivePower":22,"Factor":0.93,"Voltage":232,'
        b'"Current":0.263}}}')})
    stoppers.append(tasmota.shutdown)
    cfg = write_config(tmp_path, [
        {"name": "mcp", "driver": "mcp39f511n", "port": str(tmp_path / "acm0")},
        {"name": "um", "driver": "um", "port": str(tmp_path / "rfcomm0")},
        {"name": "ina", "driver": "hwmon", "path": str(hwmon)},
        {"name": "sh", "driver": "shelly", "url": f"http://127.0.0.1:{shelly.server_port}",
         "poll_interval_s": 0.2},
        {"name": "ta", "driver": "tasmota", "url": f"http://127.0.0.1:{tasmota.server_port}",
         "poll_interval_s": 0.2},
    ])
    journal = tmp_path / "journal"

    def by_meter() -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for p in journal_points(journal, "wattd_power"):
            out.setdefault(p.tags["meter"], []).append(p)
        return out

    with DaemonProc(cfg, simulate=False) as daemon:
        daemon.wait_until(lambda: all(len(by_meter().get(m, [])) >= 3
                                      for m in ("mcp", "um", "ina", "sh", "ta")),
                          what="3 readings from every meter")
        assert daemon.stop() == 0
    points = by_meter()
    expected = {
        "mcp": {"power_w": 41.23, "voltage_v": 228.7, "current_a": 0.1904, "energy_j": 0.0},
        "um": {"power_w": 3.063, "voltage_v": 5.087, "current_a": 0.6021, "energy_j": 0.0},
        "ina": {"power_w": 5.012 * 0.498, "voltage_v": 5.012, "current_a": 0.498},
        "sh": {"power_w": 23.45, "energy_j": 0.0},
        "ta": {"power_w": 57.0, "voltage_v": 232.0, "current_a": 0.263,
               "power_factor": 0.93, "energy_j": 0.0},
    }
    for meter, fields in expected.items():
        for point in points[meter]:
            for name, value in fields.items():
                assert point.fields[name] == pytest.approx(value, rel=1e-6), (meter, name)
            if "energy_j" not in fields:
                assert "energy_j" not in point.fields  # hwmon: no counter, none made up
