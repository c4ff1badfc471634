"""The wattd Grafana dashboard (JSON model), InfluxQL only.

InfluxQL works on InfluxDB 1.x, on 2.x through a DBRP mapping (virtual ones
exist for every bucket since 2.2) and on 3.x. Every query is in this module so
the tests can run each one, with Grafana's macros and variables substituted,
against a real InfluxDB holding what wattd wrote.
"""

# ruff: noqa: S608 - constant InfluxQL built from constants; Grafana substitutes the variables

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

DATASOURCE_UID = "wattd-influxdb"
DASHBOARD_UID = "wattd-energy"
DS = {"type": "influxdb", "uid": DATASOURCE_UID}

METER = '"meter" =~ /^$meter$/'
RUN = '"run" =~ /^$run$/'
# Whole runs only: a phase has its own wattd_run point carrying a `phase` tag.
WHOLE_RUN = "\"phase\" = ''"


def _series_query(field: str) -> str:
    return (f'SELECT mean("{field}") FROM "wattd_power" WHERE {METER} AND $timeFilter '
            f'GROUP BY time($__interval), "meter" fill(none)')


POWER_QUERY = _series_query("power_w")
VOLTAGE_QUERY = _series_query("voltage_v")
CURRENT_QUERY = _series_query("current_a")
POWER_FACTOR_QUERY = _series_query("power_factor")
ENERGY_PER_RUN_QUERY = (
    f'SELECT "energy_j" FROM "wattd_run" WHERE {METER} AND {RUN} AND {WHOLE_RUN} '
    f'AND $timeFilter GROUP BY "run", "meter"')
RUNS_TABLE_QUERY = (
    'SELECT "energy_j", "duration_s", "mean_w", "min_w", "max_w", "samples", '
    '"counter_energy_j", "gap_s", "extrapolated_s", "aborted", "clock_step", "no_readings" '
    f'FROM "wattd_run" WHERE {METER} AND {RUN} AND $timeFilter GROUP BY *')
# Region annotation: the point is stamped at the stop; start_ns gives the start.
RUN_REGIONS_QUERY = (
    'SELECT "start_ns" / 1000000 AS "start_ms", '
    '"start_ns" / 1000000 + "duration_s" * 1000 AS "stop_ms", '
    '"energy_j", "run", "meter" '
    f'FROM "wattd_run" WHERE {METER} AND {RUN} AND {WHOLE_RUN} AND $timeFilter')
MARKERS_QUERY = (
    'SELECT "text", "run", "verb" FROM "wattd_marker" '
    f'WHERE {RUN} AND $timeFilter')
# Fleet row (SPEC 10): every daemon delivers to one database. Total power: each
# meter's mean per interval, summed. (No fill(previous) inside: on InfluxDB 1.6 the
# outer sum then sees only one of the series.)
FLEET_POWER_QUERY = (
    'SELECT sum("power_w") AS "total_power_w" FROM ('
    f'SELECT mean("power_w") AS "power_w" FROM "wattd_power" WHERE {METER} AND $timeFilter '
    'GROUP BY time($__interval), "meter", "host") '
    'WHERE $timeFilter GROUP BY time($__interval) fill(none)')
# Energy per run over every meter and host: one wattd_run point per meter. A meter
# without readings has no energy_j (never 0): "meters" counts the measured ones and
# "no_readings" the others, so a sum missing a meter says so beside it.
FLEET_ENERGY_QUERY = (
    'SELECT sum("energy_j") AS "energy_j", count("energy_j") AS "meters", '
    'count("no_readings") AS "no_readings" FROM "wattd_run" '
    f'WHERE {METER} AND {RUN} AND {WHOLE_RUN} AND $timeFilter GROUP BY "run"')
METER_VARIABLE_QUERY = 'SHOW TAG VALUES FROM "wattd_power" WITH KEY = "meter"'
RUN_VARIABLE_QUERY = f'SHOW TAG VALUES FROM "wattd_run" WITH KEY = "run" WHERE {METER}'


def _target(query: str, *, fmt: str = "time_series", alias: str | None = None,
            ref: str = "A") -> dict[str, Any]:
    target: dict[str, Any] = {"refId": ref, "datasource": DS, "query": query,
                              "rawQuery": True, "resultFormat": fmt}
    if alias is not None:
        target["alias"] = alias
    return target


def _timeseries(panel_id: int, title: str, query: str, unit: str, y: int, x: int = 0,
                w: int = 12, extra_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {"drawStyle": "line", "lineInterpolation": "linear", "lineWidth": 1,
                   "fillOpacity": 10, "showPoints": "never", "spanNulls": False},
    }
    defaults.update(extra_defaults or {})
    return {
        "id": panel_id, "type": "timeseries", "title": title, "datasource": DS,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [_target(query, alias="$tag_meter")],
    }


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": query, "definition": query,
        "refresh": 2,  # on time range change: new runs appear
        "multi": True, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1, "hide": 0, "options": [],
    }


def _fleet_row(y: int) -> list[dict[str, Any]]:
    """Many daemons, one database: the cluster's power and energy per run."""
    power = _timeseries(8, "Fleet: total power (all meters and hosts)", FLEET_POWER_QUERY,
                        "watt", y + 1, w=12)
    power["targets"] = [_target(FLEET_POWER_QUERY, alias="total")]
    energy = {
        "id": 9, "type": "barchart", "title": "Fleet: energy per run (summed over meters "
        "and hosts)", "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": 12, "y": y + 1},
        "fieldConfig": {"defaults": {"unit": "joule", "decimals": 1}, "overrides": [
            {"matcher": {"id": "byName", "options": "meters"},
             "properties": [{"id": "unit", "value": "none"}, {"id": "decimals", "value": 0}]}]},
        "options": {"xField": "run", "orientation": "auto", "showValue": "auto",
                    "groupWidth": 0.7, "barWidth": 0.9, "stacking": "none",
                    "legend": {"displayMode": "list", "placement": "bottom",
                               "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "none"}},
        "targets": [_target(FLEET_ENERGY_QUERY, fmt="table")],
        "transformations": [{"id": "merge", "options": {}},
                            {"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    }
    row = {"id": 7, "type": "row", "title": "Fleet", "collapsed": False, "panels": [],
           "datasource": DS, "targets": [],
           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
    return [row, power, energy]


def build_dashboard() -> dict[str, Any]:
    """The dashboard JSON model (Grafana 10/11, schemaVersion 39)."""
    panels: list[dict[str, Any]] = [
        _timeseries(1, "Power per meter", POWER_QUERY, "watt", 0, w=24),
        _timeseries(2, "Voltage", VOLTAGE_QUERY, "volt", 8, x=0, w=8),
        _timeseries(3, "Current", CURRENT_QUERY, "amp", 8, x=8, w=8),
        _timeseries(4, "Power factor", POWER_FACTOR_QUERY, "none", 8, x=16, w=8,
                    extra_defaults={"min": 0, "max": 1, "decimals": 3}),
        {
            "id": 5, "type": "barchart", "title": "Energy per run", "datasource": DS,
            "gridPos": {"h": 9, "w": 24, "x": 0, "y": 16},
            "fieldConfig": {"defaults": {"unit": "joule", "decimals": 1}, "overrides": []},
            "options": {"xField": "run", "orientation": "auto", "showValue": "auto",
                        "groupWidth": 0.7, "barWidth": 0.9, "stacking": "none",
                        "legend": {"displayMode": "list", "placement": "bottom",
                                   "showLegend": True},
                        "tooltip": {"mode": "single", "sort": "none"}},
            "targets": [_target(ENERGY_PER_RUN_QUERY, fmt="table")],
            "transformations": [{"id": "merge", "options": {}},
                                {"id": "organize", "options": {"excludeByName": {"Time": True}}}],
        },
        {
            "id": 6, "type": "table", "title": "Runs", "datasource": DS,
            "gridPos": {"h": 10, "w": 24, "x": 0, "y": 25},
            "fieldConfig": {
                "defaults": {"custom": {"align": "auto"}},
                "overrides": [
                    {"matcher": {"id": "byName", "options": name},
                     "properties": [{"id": "unit", "value": unit}]}
                    for name, unit in (("energy_j", "joule"), ("counter_energy_j", "joule"),
                                       ("duration_s", "s"), ("mean_w", "watt"),
                                       ("min_w", "watt"), ("max_w", "watt"),
                                       ("gap_s", "s"), ("extrapolated_s", "s"))
                ],
            },
            "options": {"showHeader": True,
                        "sortBy": [{"displayName": "Time", "desc": True}]},
            "targets": [_target(RUNS_TABLE_QUERY, fmt="table")],
            "transformations": [{"id": "merge", "options": {}}],
        },
        *_fleet_row(35),
    ]
    annotations = [
        {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
         "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
         "name": "Annotations & Alerts", "type": "dashboard"},
        {
            # Shaded from start to stop. Legacy InfluxDB annotation columns plus the
            # field mappings of Grafana's standard annotation path.
            "name": "Runs", "datasource": DS, "enable": True, "hide": False,
            "iconColor": "rgba(255, 152, 48, 0.35)",
            "query": RUN_REGIONS_QUERY,
            "titleColumn": "run", "tagsColumn": "meter", "textColumn": "energy_j",
            "timeEndColumn": "start_ms",
            "target": {"refId": "Runs", "query": RUN_REGIONS_QUERY, "rawQuery": True,
                       "resultFormat": "table", "fromAnnotations": True,
                       "titleColumn": "run", "tagsColumn": "meter", "textColumn": "energy_j",
                       "timeEndColumn": "start_ms"},
            "mappings": {"time": {"source": "field", "value": "start_ms"},
                         "timeEnd": {"source": "field", "value": "stop_ms"},
                         "title": {"source": "field", "value": "run"},
                         "text": {"source": "field", "value": "energy_j"},
                         "tags": {"source": "field", "value": "meter"}},
        },
        {
            "name": "Markers", "datasource": DS, "enable": False, "hide": False,
            "iconColor": "rgba(138, 184, 255, 1)",
            "query": MARKERS_QUERY,
            "titleColumn": "run", "tagsColumn": "verb", "textColumn": "text",
            "target": {"refId": "Markers", "query": MARKERS_QUERY, "rawQuery": True,
                       "resultFormat": "table", "fromAnnotations": True,
                       "titleColumn": "run", "tagsColumn": "verb", "textColumn": "text"},
        },
    ]
    return {
        "uid": DASHBOARD_UID,
        "title": "wattd: power and benchmark runs",
        "description": "Power per meter with benchmark runs shaded; energy per run (wattd).",
        "tags": ["wattd", "energy"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,  # shared crosshair
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {"list": annotations},
        "templating": {"list": [_variable("meter", "Meter", METER_VARIABLE_QUERY),
                                _variable("run", "Run", RUN_VARIABLE_QUERY)]},
        "panels": panels,
    }


def iter_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, InfluxQL) for every query in a dashboard: panels, annotations, variables."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["query"]
    for ann in dashboard.get("annotations", {}).get("list", []):
        if "query" in ann:
            yield f"annotation {ann['name']!r}", ann["query"]
    for var in dashboard.get("templating", {}).get("list", []):
        yield f"variable {var['name']!r}", var["query"]
