"""Prometheus /metrics (SPEC 10): a real daemon scraped by Debian's real Prometheus."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProc, write_config
from tests.ports import free_port
from tests.prometheus_server import Prometheus
from tests.test_markers_server import _non_loopback_ipv4
from wattd.config.fleet import PrometheusConfig
from wattd.errors import ConfigError
from wattd.metrics.prometheus import PrometheusEndpoint, Snapshot, peer_allowed


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return int(resp.status), resp.read().decode()


def test_prometheus_scrapes_the_live_power_of_a_real_daemon(tmp_path: Path) -> None:
    metrics_port = free_port()
    marker_port = free_port("udp")
    cfg = write_config(tmp_path, [{"name": "pi", "driver": "gb202", "port": "/dev/none",
                                   "power_w": 42.0}],
                       markers={"listen": [f"127.0.0.1:{marker_port}"]},
                       prometheus={"listen": f"127.0.0.1:{metrics_port}"})
    with DaemonProc(cfg) as daemon, \
            Prometheus(tmp_path / "prom", [f"127.0.0.1:{metrics_port}"]) as prom:
        [series] = prom.wait_for('wattd_power_watts{meter="pi"}', 1)
        assert float(series["value"][1]) == pytest.approx(42.0, rel=0.03)
        [energy] = prom.wait_for('wattd_energy_joules_total{meter="pi"}', 1)
        assert float(energy["value"][1]) > 0
        [ok] = prom.wait_for('wattd_frames_total{meter="pi",result="ok"}', 1)
        assert float(ok["value"][1]) > 0
        # A run opens and closes: its gauge, then its energy.
        mark = [sys.executable, "-m", "wattd", "mark", "--to", f"127.0.0.1:{marker_port}"]
        subprocess.run([*mark, "start", "prom-run"], check=True, capture_output=True)
        prom.wait_for('wattd_run_open{meter="pi",run="prom-run"} == 1', 1)
        stop = subprocess.run([*mark, "stop", "prom-run"], check=True, capture_output=True,
                              text=True)
        energy_j = float(stop.stdout.split("energy_j=")[1].split()[0])
        [last] = prom.wait_for('wattd_last_run_energy_joules{run="prom-run"}', 1)
        assert float(last["value"][1]) == pytest.approx(energy_j, rel=1e-6)
        status, text = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert "wattd_clock_synced " in text
        assert 'wattd_run_open{meter="pi",run="prom-run"}' not in text  # closed
        assert daemon.stop() == 0


def test_non_loopback_metrics_need_an_allow_list_and_strangers_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"prometheus\.allow"):
        PrometheusEndpoint(PrometheusConfig(listen="0.0.0.0:9289"), Snapshot)
    endpoint = PrometheusEndpoint(PrometheusConfig(listen="0.0.0.0:9289",
                                                   allow=["192.0.2.0/24"]), Snapshot)
    assert endpoint.allow == [ipaddress.ip_network("192.0.2.0/24")]
    assert peer_allowed("192.0.2.9", endpoint.allow)
    assert peer_allowed("::ffff:192.0.2.9", endpoint.allow)
    assert peer_allowed("127.0.0.1", endpoint.allow)  # loopback always, as for markers
    assert not peer_allowed("198.51.100.1", endpoint.allow)
    assert not peer_allowed("not-an-address", endpoint.allow)


def test_metrics_without_readings_export_no_fake_zero() -> None:
    from wattd.metrics.prometheus import MeterSample

    endpoint = PrometheusEndpoint(PrometheusConfig(listen=f"127.0.0.1:{free_port()}"),
                                  lambda: Snapshot(meters={"pi": MeterSample()},
                                                   backlog_bytes={"db": 12}))
    text = endpoint.render().decode()
    assert "wattd_power_watts{" not in text
    assert "\nwattd_clock_synced " not in text  # unknown clock state: no sample
    assert 'wattd_journal_backlog_bytes{sink="db"} 12.0' in text


def _http_get_from(source: str, host: str, port: int) -> bytes:
    """A raw GET /metrics from a chosen source address; the whole answer."""
    with socket.create_connection((host, port), timeout=10, source_address=(source, 0)) as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_a_scraper_outside_the_allow_list_gets_403_and_is_counted() -> None:
    """The real endpoint on every address with an allow list: a peer outside it
    (a non-loopback address of this host) is refused, loopback is served."""
    outside = _non_loopback_ipv4()
    if outside is None:
        pytest.skip("this host has no non-loopback IPv4 address to connect from")
    endpoint = PrometheusEndpoint(
        PrometheusConfig(listen=f"0.0.0.0:{free_port()}", allow=["203.0.113.7/32"]),
        lambda: Snapshot(meters={}, backlog_bytes={"db": 3}))
    await endpoint.start()
    try:
        assert endpoint.address is not None
        port = endpoint.address[1]
        refused = await asyncio.to_thread(_http_get_from, outside, outside, port)
        assert refused.startswith(b"HTTP/1.1 403")
        assert b"wattd_journal_backlog_bytes" not in refused
        assert endpoint.status()["forbidden"] == 1
        served = await asyncio.to_thread(_http_get_from, "127.0.0.2", "127.0.0.1", port)
        assert served.startswith(b"HTTP/1.1 200")
        assert b'wattd_journal_backlog_bytes{sink="db"} 3.0' in served
        assert endpoint.status()["forbidden"] == 1
    finally:
        await endpoint.stop()


def test_a_last_run_without_readings_exports_no_energy() -> None:
    from wattd.metrics.snapshot import LastRuns

    runs = LastRuns()
    runs.observe(['wattd_run,meter=pi,run=r1 energy_j=12.5,duration_s=2.0,start_ns=1i 3',
                  'wattd_run,meter=pi,run=r2 duration_s=2.0,samples=0i,start_ns=4i,'
                  'no_readings=true 6'])
    endpoint = PrometheusEndpoint(PrometheusConfig(listen=f"127.0.0.1:{free_port()}"),
                                  lambda: Snapshot(last_run_energy_j=dict(runs.by_meter)))
    text = endpoint.render().decode()
    # Neither a 0 for r2 nor r1's figure as if it were the last run's.
    assert "wattd_last_run_energy_joules{" not in text
