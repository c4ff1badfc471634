"""What the Prometheus endpoint reads at scrape time, built from typed inputs.

The composition root (``wattd.daemon.app``) hands :func:`build_snapshot` the
daemon's status, the pipeline's last reading per meter and a :class:`LastRuns`,
which the marker service feeds through its ``on_journaled`` hook with the lines
it wrote to the journal (so the reading path is not touched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wattd.lineprotocol import parse_line
from wattd.metrics.prometheus import MeterSample, Snapshot
from wattd.readings import Reading

RUN_LINE_PREFIX = "wattd_run,"
STALE_READING_S = 10.0  # an older last reading is not "the power now"


class LastRuns:
    """Energy of the last run closed per meter, read off the journaled lines."""

    def __init__(self) -> None:
        self.by_meter: dict[str, tuple[str, float]] = {}

    def observe(self, lines: Sequence[str]) -> None:
        for line in lines:
            if not line.startswith(RUN_LINE_PREFIX):
                continue
            try:
                point = parse_line(line)
            except Exception:  # noqa: BLE001, S112 - our own lines; a metric is not worth a crash
                continue
            meter, run = point.tags.get("meter"), point.tags.get("run")
            energy = point.fields.get("energy_j")
            if not meter or not run or "phase" in point.tags:
                continue
            if isinstance(energy, float):
                self.by_meter[meter] = (run, energy)
            elif point.fields.get("no_readings") is True:
                # The meter's last run has no energy: no figure (never the one before).
                self.by_meter.pop(meter, None)


def _section(status: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = status.get(key)
    return value if isinstance(value, Mapping) else {}


def build_snapshot(status: Mapping[str, object], meters: Sequence[str],
                   last_reading: Mapping[str, Reading], now_boot_ns: int,
                   runs: LastRuns) -> Snapshot:
    snap = Snapshot(last_run_energy_j=dict(runs.by_meter))
    meters_status = _section(status, "meters")
    for name in meters:
        sample = MeterSample()
        reading = last_reading.get(name)
        if reading is not None:
            sample.energy_j = reading.energy_j
            if (now_boot_ns - reading.t_boot_ns) / 1e9 <= STALE_READING_S:
                sample.power_w = reading.power_w
                sample.voltage_v = reading.voltage_v
        entry = _section(meters_status, name)
        frames_ok, frames_bad = entry.get("frames_ok"), entry.get("frames_bad")
        if isinstance(frames_ok, int):
            sample.frames_ok = frames_ok
        if isinstance(frames_bad, int):
            sample.frames_bad = frames_bad
        snap.meters[name] = sample
    open_runs = _section(status, "markers").get("open_runs")
    for item in open_runs if isinstance(open_runs, list) else []:
        if isinstance(item, Mapping):
            snap.open_runs.append((str(item["meter"]), str(item["run"])))
    for name, sink in _section(status, "sinks").items():
        backlog = sink.get("backlog_bytes") if isinstance(sink, Mapping) else None
        if isinstance(backlog, int) and backlog >= 0:  # -1: journal unreadable, not measured
            snap.backlog_bytes[name] = backlog
    synced = _section(status, "clock").get("synced")
    if isinstance(synced, bool):
        snap.clock_synced = synced
    return snap
