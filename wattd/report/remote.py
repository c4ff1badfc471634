"""The report from a shared database (SPEC 10): the ``wattd_run`` points every
daemon delivered, read from InfluxDB 1.x (``/query``, InfluxQL) or from a
VictoriaMetrics single node (``/api/v1/export``), turned into the records the
journal report is built from (:mod:`wattd.report.model`).

Decisions where the spec is silent:
- The server kind is told by ``GET /health``: VictoriaMetrics answers ``OK``
  (InfluxDB 1.x has no such endpoint or answers JSON).
- On VictoriaMetrics ``--database`` selects the ``db`` label the InfluxDB
  write API gives every point written with ``?db=``; left out, every
  ``wattd_run`` series counts. Fields come back as ``wattd_run_<field>``
  series, timestamps in ms; the points of one run and meter are put back
  together by their labels and timestamp.
- A meter's ``host`` comes from the ``host`` tag of its ``wattd_power``
  points (meter tags from the config; ``wattd_run`` carries only run tags).
- A meter that has ``wattd_run`` points in the database but none for a run
  that started after the meter's first run is listed for that run as
  ``missing`` (no energy, never 0): its daemon did not answer, or did not
  deliver.
- A ``wattd_run`` point with ``no_readings`` (or, from a daemon before that
  field, ``samples=0`` with the power held over the whole run:
  ``extrapolated_s`` = ``duration_s`` > 0, its ``energy_j`` was never
  measured) has no energy: the run is listed as ``no_readings`` and kept out
  of the statistics, as in the journal report.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wattd.energy import EnergyResult
from wattd.errors import UsageError, WattdError
from wattd.report.records import RunRecord, ScanResult, ScanStats

RUN_MEASUREMENT = "wattd_run"
TIMEOUT_S = 60.0
CHUNK_ROWS = 10_000
_STRUCTURAL_TAGS = ("run", "meter", "phase")


class RemoteReadError(WattdError):
    """The database could not be read (down, refused, not a wattd database)."""


@dataclass(slots=True)
class RunPoint:
    """One ``wattd_run`` point: tags, fields and its time (the stop), in ns."""

    tags: dict[str, str]
    fields: dict[str, float | int | bool]
    t_ns: int


# ------------------------------------------------------------------------- HTTP

def _get(url: str, timeout_s: float = TIMEOUT_S) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - http(s) only
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteReadError(f"cannot reach {url.partition('?')[0]}: {reason}") from None


def is_victoria(url: str) -> bool:
    status, body = _get(f"{url.rstrip('/')}/health", timeout_s=10.0)
    return status == 200 and body.strip() == b"OK"


# ------------------------------------------------------------------- InfluxDB 1.x

def influx_query(url: str, database: str, q: str) -> Iterator[dict[str, Any]]:
    """Series of an InfluxQL query, read in chunks (no server row limit bites)."""
    params = urllib.parse.urlencode({"db": database, "q": q, "epoch": "ns",
                                     "chunked": "true", "chunk_size": str(CHUNK_ROWS)})
    status, body = _get(f"{url.rstrip('/')}/query?{params}")
    if status != 200:
        raise RemoteReadError(f"InfluxDB {url} answered {status}: "
                              f"{body[:200].decode('utf-8', 'replace')}")
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            raise RemoteReadError(f"InfluxDB {url}: not a JSON answer") from None
        if "error" in doc:
            raise RemoteReadError(f"InfluxDB {url}: {doc['error']}")
        for result in doc.get("results", []):
            if "error" in result:
                raise RemoteReadError(f"InfluxDB {url} database {database!r}: "
                                      f"{result['error']}")
            yield from result.get("series", [])


def influx_run_points(url: str, database: str) -> list[RunPoint]:
    tag_keys: set[str] = set()
    for series in influx_query(url, database, 'SHOW TAG KEYS FROM "wattd_run"'):
        tag_keys.update(str(v[0]) for v in series.get("values", []))
    points = []
    select = 'SELECT * FROM "wattd_run"'
    for series in influx_query(url, database, select):
        columns = series["columns"]
        for values in series.get("values", []):
            tags: dict[str, str] = {}
            fields: dict[str, float | int | bool] = {}
            t_ns = 0
            for col, value in zip(columns, values, strict=True):
                if col == "time":
                    t_ns = int(value)
                elif value is None:
                    continue
                elif col in tag_keys:
                    tags[col] = str(value)
                elif isinstance(value, bool | int | float):
                    fields[col] = value
            points.append(RunPoint(tags, fields, t_ns))
    return points


def influx_meter_hosts(url: str, database: str) -> dict[str, str]:
    out: dict[str, str] = {}
    q = 'SELECT last("power_w") FROM "wattd_power" GROUP BY "meter", "host"'
    for series in influx_query(url, database, q):
        tags = series.get("tags") or {}
        if tags.get("meter") and tags.get("host"):
            out[str(tags["meter"])] = str(tags["host"])
    return out


# ------------------------------------------------------------------ VictoriaMetrics

def _selector(name_regex: str, database: str | None) -> str:
    extra = "" if database is None else f',db="{_label_escape(database)}"'
    return f'{{__name__=~"{name_regex}"{extra}}}'


def _label_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def victoria_export(url: str, match: str) -> Iterator[dict[str, Any]]:
    params = urllib.parse.urlencode({"match[]": match, "start": "0"})
    status, body = _get(f"{url.rstrip('/')}/api/v1/export?{params}")
    if status != 200:
        raise RemoteReadError(f"VictoriaMetrics {url} answered {status}: "
                              f"{body[:200].decode('utf-8', 'replace')}")
    for line in body.splitlines():
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                raise RemoteReadError(f"VictoriaMetrics {url}: not a JSON export") from None


def victoria_run_points(url: str, database: str | None) -> list[RunPoint]:
    prefix = f"{RUN_MEASUREMENT}_"
    merged: dict[tuple[tuple[tuple[str, str], ...], int], RunPoint] = {}
    for series in victoria_export(url, _selector(f"{prefix}.*", database)):
        labels = dict(series.get("metric") or {})
        name = str(labels.pop("__name__", ""))
        labels.pop("db", None)
        field_name = name.removeprefix(prefix)
        key_labels = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
        for t_ms, value in zip(series.get("timestamps", []), series.get("values", []),
                               strict=False):
            if not isinstance(value, int | float) or not math.isfinite(value):
                continue
            key = (key_labels, int(t_ms))
            point = merged.get(key)
            if point is None:
                point = merged[key] = RunPoint(dict(key_labels), {}, int(t_ms) * 1_000_000)
            point.fields[field_name] = value
    return list(merged.values())


def victoria_meter_hosts(url: str, database: str | None) -> dict[str, str]:
    params = urllib.parse.urlencode({"match[]": _selector("wattd_power_power_w", database),
                                     "start": "0"})
    status, body = _get(f"{url.rstrip('/')}/api/v1/series?{params}")
    if status != 200:
        return {}
    out: dict[str, str] = {}
    for labels in json.loads(body).get("data", []):
        if labels.get("meter") and labels.get("host"):
            out[str(labels["meter"])] = str(labels["host"])
    return out


# ------------------------------------------------------------------- to records

def _number(fields: dict[str, float | int | bool], key: str) -> float | None:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def record_from_point(point: RunPoint, hosts: dict[str, str]) -> RunRecord | None:
    run, meter = point.tags.get("run"), point.tags.get("meter")
    if not run or not meter:
        return None
    f = point.fields
    start = _number(f, "start_ns")
    tags = {k: v for k, v in point.tags.items() if k not in _STRUCTURAL_TAGS}
    if meter in hosts and "host" not in tags:
        tags["host"] = hosts[meter]
    aborted = bool(f.get("aborted"))
    record = RunRecord(run=run, phase=point.tags.get("phase"), meter=meter,
                       start_ns=int(start) if start is not None else point.t_ns,
                       stop_ns=point.t_ns, tags=tags, end="abort" if aborted else "stop",
                       aborted=aborted, clock_step=bool(f.get("clock_step")),
                       gap_s=_number(f, "gap_s"),
                       counter_energy_j=_number(f, "counter_energy_j"),
                       integrated_to_ns=point.t_ns)
    energy = _number(f, "energy_j")
    if not aborted and _no_readings(f):
        record.no_readings = True
        record.note = "no readings during the run: no energy"
    elif energy is not None and not aborted:
        duration = _number(f, "duration_s") or 0.0
        mean = _number(f, "mean_w")
        record.result = EnergyResult(
            energy_j=energy, duration_s=duration,
            mean_w=mean if mean is not None else (energy / duration if duration else 0.0),
            min_w=_number(f, "min_w") or 0.0, max_w=_number(f, "max_w") or 0.0,
            samples=int(_number(f, "samples") or 0),
            extrapolated_s=_number(f, "extrapolated_s") or 0.0)
        record.daemon_energy_j = energy
        record.daemon_extrapolated_s = record.result.extrapolated_s or None
    elif start is None:
        record.note = "wattd_run point without energy_j or start_ns"
    return record


def _no_readings(f: dict[str, float | int | bool]) -> bool:
    """No reading measured the run (VictoriaMetrics stores ``true`` as 1)."""
    if f.get("no_readings"):
        return True
    duration = _number(f, "duration_s")
    held = _number(f, "extrapolated_s")
    return (_number(f, "samples") == 0 and duration is not None and duration > 0
            and held is not None and held >= duration * (1 - 1e-9))


def missing_records(records: list[RunRecord]) -> list[RunRecord]:
    """A record per (run, meter) the database lacks: meters whose first run
    started before that run, with no ``wattd_run`` point for it."""
    first_start: dict[str, int] = {}
    for r in records:
        first_start[r.meter] = min(first_start.get(r.meter, r.start_ns), r.start_ns)
    by_run: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.phase is None:
            by_run.setdefault(r.run, []).append(r)
    out = []
    for run, members in by_run.items():
        present = {r.meter for r in members}
        start = min(r.start_ns for r in members)
        for meter, first in sorted(first_start.items()):
            if meter not in present and first <= start:
                out.append(RunRecord(run=run, phase=None, meter=meter, start_ns=start,
                                     stop_ns=None, end="missing",
                                     note="missing: no wattd_run point for this meter "
                                          "in the database"))
    return out


def remote_scan(url: str, database: str | None) -> ScanResult:
    """Records from the database, sorted by start; the report model takes it from here."""
    if is_victoria(url):
        points = victoria_run_points(url, database)
        hosts = victoria_meter_hosts(url, database)
        where = f"VictoriaMetrics {url}" + (f" db={database}" if database else "")
    else:
        if not database:
            raise UsageError(f"{url} is an InfluxDB: give --database DB")
        points = influx_run_points(url, database)
        hosts = influx_meter_hosts(url, database) if points else {}
        where = f"InfluxDB {url} database {database}"
    records = [r for p in points if (r := record_from_point(p, hosts)) is not None]
    records += missing_records(records)
    records.sort(key=lambda r: (r.start_ns, r.run, r.phase or "", r.meter))
    stats = ScanStats(run_points=len(points))
    skipped = len(points) - sum(1 for r in records if r.end != "missing")
    if skipped:
        stats.notes.append(f"{skipped} wattd_run point(s) without run or meter tag skipped")
    stats.notes.append(f"read {len(points)} wattd_run point(s) from {where}")
    meters = sorted({r.meter for r in records})
    return ScanResult(records=records, meters=meters, stats=stats)

