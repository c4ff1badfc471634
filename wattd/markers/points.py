"""The journal points markers write (SPEC 3): ``wattd_marker`` for every
accepted marker, ``wattd_run`` for every run or phase that closes; and the
timeline mark a ``wattd_marker`` point records, for what replays them. Pure."""

from __future__ import annotations

from wattd.energy import NS, EnergyResult
from wattd.lineprotocol import FieldValue, Point, format_line
from wattd.markers.intervals import Interval
from wattd.markers.timeline import Mark, decode_tags, encode_tags

MARKER_MEASUREMENT = "wattd_marker"
RUN_MEASUREMENT = "wattd_run"
DAEMON_SOURCE = "wattd"  # the ``source`` of markers the daemon writes itself

# The ``wattd_run`` field (boolean) and the stop-reply key (meter names) of an
# interval no reading measured: it has no energy, never 0 J.
NO_READINGS = "no_readings"


def marker_line(verb: str, run: str, source: str, t_ns: int, *, phase: str | None = None,
                meter: str | None = None, tags: dict[str, str] | None = None,
                skew_ms: float | None = None, text: str | None = None) -> str:
    """``text`` overrides the encoded ``tags`` (a daemon-made marker's reason)."""
    point_tags = {"run": run, "verb": verb, "source": source}
    if phase is not None:
        point_tags["phase"] = phase
    if meter is not None:
        point_tags["meter"] = meter
    fields: dict[str, FieldValue] = {
        "text": text if text is not None else encode_tags(tags or {})}
    if skew_ms is not None:
        fields["skew_ms"] = float(skew_ms)
    return format_line(MARKER_MEASUREMENT, point_tags, fields, t_ns)


def run_line(interval: Interval, energy: EnergyResult | None, counter_j: float | None, *,
             clock_step: bool, aborted: bool = False) -> str:
    """The ``wattd_run`` point of a closed interval. ``energy`` None (not
    aborted): no reading measured it, so the point has no energy fields and
    carries ``no_readings=true``, never ``energy_j=0``."""
    stop_boot = interval.stop_boot_ns if interval.stop_boot_ns is not None else 0
    tags = {**interval.tags, "run": interval.run, "meter": interval.meter}
    if interval.phase is not None:
        tags["phase"] = interval.phase
    fields: dict[str, FieldValue] = {}
    measured = energy is not None and not aborted
    if energy is not None and measured:
        fields.update(energy_j=energy.energy_j, duration_s=energy.duration_s,
                      mean_w=energy.mean_w, min_w=energy.min_w, max_w=energy.max_w,
                      samples=energy.samples)
    else:
        fields["duration_s"] = max(0, stop_boot - interval.start_boot_ns) / NS
        if not aborted:
            fields["samples"] = 0
    fields["start_ns"] = interval.start_rt_ns
    if counter_j is not None and measured:
        fields["counter_energy_j"] = float(counter_j)
    gap = interval.gap_s(stop_boot)
    if gap > 0:
        fields["gap_s"] = gap
    if energy is not None and measured and energy.extrapolated_s > 0:
        fields["extrapolated_s"] = energy.extrapolated_s
    if aborted:
        fields["aborted"] = True
    elif not measured:
        fields[NO_READINGS] = True
    if clock_step:
        fields["clock_step"] = True
    stop_rt = interval.stop_rt_ns if interval.stop_rt_ns is not None else interval.start_rt_ns
    return format_line(RUN_MEASUREMENT, tags, fields, stop_rt)


def mark_of(point: Point) -> Mark | None:
    """The mark a ``wattd_marker`` point records; None for an ``event`` (or
    anything but a start, stop or abort) and for a point without a run."""
    verb = point.tags.get("verb")
    run = point.tags.get("run")
    if verb not in ("start", "stop", "abort") or not run:
        return None
    text = point.fields.get("text")
    return Mark(verb, run, point.tags.get("phase") or None, point.tags.get("meter") or None,
                decode_tags(text) if isinstance(text, str) else {})
