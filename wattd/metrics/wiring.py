"""Plug the Prometheus endpoint into the daemon (one call from ``Daemon.__init__``).

The endpoint sees the daemon through one callable, :func:`daemon_snapshot`,
built from the status the daemon already keeps (``Daemon.status()``, the
pipeline's last reading per meter) and from the ``wattd_run`` lines the marker
service journals (tapped on their way to the journal, so the hot path is not
touched)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wattd.metrics.prometheus import MeterSample, PrometheusEndpoint, Snapshot

RUN_LINE_PREFIX = "wattd_run,"
STALE_READING_S = 10.0  # an older last reading is not "the power now"


class LastRuns:
    """Energy of the last run closed per meter, read off the journaled lines."""

    def __init__(self) -> None:
        self.by_meter: dict[str, tuple[str, float]] = {}

    def observe(self, lines: Sequence[str]) -> None:
        from wattd.lineprotocol import parse_line

        for line in lines:
            if not line.startswith(RUN_LINE_PREFIX):
                continue
            try:
                point = parse_line(line)
            except Exception:  # noqa: BLE001 - our own lines; a metric is not worth a crash
                point = None
            if point is None:
                continue
            meter, run = point.tags.get("meter"), point.tags.get("run")
            energy = point.fields.get("energy_j")
            if meter and run and "phase" not in point.tags and isinstance(energy, float):
                self.by_meter[meter] = (run, energy)


class _JournalTap:
    """Stands in for the journal the marker service writes to; passes every
    append through unchanged, then shows the lines to ``on_lines``."""

    def __init__(self, journal: Any, runs: LastRuns) -> None:
        self._journal = journal
        self._runs = runs

    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None:
        await self._journal.append(lines, durable=durable)
        self._runs.observe(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)


def daemon_snapshot(daemon: Any, runs: LastRuns) -> Snapshot:
    status = daemon.status()
    snap = Snapshot(last_run_energy_j=dict(runs.by_meter))
    now_boot = daemon.clock.boottime_ns()
    meters_status = status.get("meters") or {}
    for meter in daemon.cfg.meters:
        sample = MeterSample()
        reading = daemon.pipeline.last_reading.get(meter.name)
        if reading is not None:
            sample.energy_j = reading.energy_j
            if (now_boot - reading.t_boot_ns) / 1e9 <= STALE_READING_S:
                sample.power_w = reading.power_w
                sample.voltage_v = reading.voltage_v
        entry = meters_status.get(meter.name) or {}
        if isinstance(entry.get("frames_ok"), int):
            sample.frames_ok = entry["frames_ok"]
        if isinstance(entry.get("frames_bad"), int):
            sample.frames_bad = entry["frames_bad"]
        snap.meters[meter.name] = sample
    markers = status.get("markers") or {}
    for item in markers.get("open_runs") or []:
        snap.open_runs.append((str(item["meter"]), str(item["run"])))
    for name, sink in (status.get("sinks") or {}).items():
        backlog = sink.get("backlog_bytes") if isinstance(sink, dict) else None
        if isinstance(backlog, int) and backlog >= 0:  # -1: journal unreadable, not measured
            snap.backlog_bytes[name] = backlog
    clock = status.get("clock") or {}
    if isinstance(clock.get("synced"), bool):
        snap.clock_synced = clock["synced"]
    return snap


def install_prometheus(daemon: Any) -> PrometheusEndpoint | None:
    """Build the endpoint when ``prometheus`` is configured (else None); it starts
    with the other services and stops before the pipeline drains."""
    cfg = daemon.cfg.prometheus
    if cfg is None:
        return None
    runs = LastRuns()
    markers = getattr(daemon, "markers", None)
    if markers is not None and hasattr(markers, "journal"):
        markers.journal = _JournalTap(markers.journal, runs)
    endpoint = PrometheusEndpoint(cfg, lambda: daemon_snapshot(daemon, runs))
    daemon.add_status("prometheus", endpoint.status)
    daemon.startup_hooks.append(endpoint.start)
    daemon.shutdown_hooks.append(endpoint.stop)
    return endpoint
