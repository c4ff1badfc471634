"""One streaming pass over the journal: runs from markers, energy per run and meter.

The journal is read segment by segment in large blocks (plain and gzip),
never loaded whole. ``wattd_power`` lines, nearly all of the journal, take a
fast path of byte-string operations (meter, ``power_w`` and the timestamp
only); markers, run results and any line with an escape go through the full
line-protocol parser. Memory is bounded by the number of runs, not readings.

Energies come from :class:`wattd.energy.IntervalIntegrator`, the definition
the daemon uses online: linear interpolation between readings, exact run
boundaries. One integrator per (run, phase, meter) is created at the start
marker, seeded with the meter's most recent readings (so the reading that
brackets the start is known even when it was journaled before the marker),
fed every later reading of that meter, and resolved once a reading at or
after the stop time has been seen.

Runs without a stop (a journal copied mid-run, a crashed daemon) are
integrated up to the meter's last reading and flagged ``open``; they are
listed but kept out of statistics. Nothing in a journal is fatal: torn lines,
unparsable lines, unknown measurements, stops without a start and damaged
gzip segments are counted and reported as notes.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from wattd.energy import EnergyResult, IntervalIntegrator
from wattd.journal.segments import list_segments
from wattd.lineprotocol import FieldValue, LineProtocolError, Point, parse_line

_BLOCK = 4 << 20
# Readings remembered per meter so that a start marker journaled after the
# readings around its boundary still finds them (the daemon holds readings back
# until markers are in, so in practice only the bracketing one is needed).
_RECENT = 512
_HEAD_CACHE_MAX = 100_000
_PLOT_POINTS = 4000  # per run and meter, decimated
_POWER_PREFIX = b"wattd_power,"
_PLAUSIBLE_W = 1e12


@dataclass(slots=True)
class RunRecord:
    """One run (or phase) on one meter, as found in the journal."""

    run: str
    phase: str | None
    meter: str
    start_ns: int
    stop_ns: int | None = None  # None while no stop was seen
    tags: dict[str, str] = field(default_factory=dict)
    end: str = "open"  # "stop", "abort", "daemon" (closed by a wattd_run point), "open"
    result: EnergyResult | None = None
    integrated_to_ns: int | None = None  # the stop time, or the last reading of an open run
    note: str | None = None
    # From the daemon's own wattd_run point, when journaled.
    counter_energy_j: float | None = None
    daemon_energy_j: float | None = None
    gap_s: float | None = None
    daemon_extrapolated_s: float | None = None
    aborted: bool = False
    clock_step: bool = False
    plot: list[tuple[int, float]] | None = None

    @property
    def is_open(self) -> bool:
        return self.end == "open"


class _Tracker:
    __slots__ = ("integ", "plot_stride", "plot_tick", "record", "stop_ns")

    def __init__(self, record: RunRecord, plot: bool) -> None:
        self.record = record
        self.integ = IntervalIntegrator(record.start_ns)
        self.stop_ns: int | None = None
        self.plot_stride = 1
        self.plot_tick = 0
        if plot:
            record.plot = []


class _Meter:
    __slots__ = ("active", "last_t", "pending", "recent")

    def __init__(self) -> None:
        self.pending: list[tuple[int, float]] = []  # parsed, not yet fed (one block)
        self.recent: deque[tuple[int, float]] = deque(maxlen=_RECENT)
        self.active: list[_Tracker] = []
        self.last_t: int | None = None


@dataclass(slots=True)
class ScanStats:
    segments: int = 0
    bytes_read: int = 0  # uncompressed
    lines: int = 0
    readings: int = 0
    readings_without_power: int = 0
    markers: int = 0
    run_points: int = 0
    torn_lines: int = 0  # a last line without its newline
    bad_lines: int = 0  # not line protocol, or a wattd point missing what it needs
    unknown: Counter[str] = field(default_factory=Counter)  # measurement -> lines
    damaged_segments: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ScanResult:
    records: list[RunRecord]
    meters: list[str]
    stats: ScanStats


class _DamagedError(Exception):
    pass


def _plain_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            yield block


def _gzip_blocks(path: Path) -> Iterator[bytes]:
    """Decompressed blocks of a gzip file (several members allowed). A truncated
    file yields everything up to the damage, then raises _DamagedError."""
    with open(path, "rb") as fh:
        inflater = zlib.decompressobj(wbits=31)
        started = False
        while chunk := fh.read(_BLOCK // 4):
            while chunk:
                started = True
                out = inflater.decompress(chunk)
                if out:
                    yield out
                if inflater.eof:
                    chunk = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    started = False
                else:
                    chunk = b""
        if started:
            rest = inflater.flush()
            if rest:
                yield rest
            raise _DamagedError("truncated gzip segment, read up to the damage")


def parse_text_tags(text: str) -> dict[str, str]:
    """The ``text`` field of a marker: user tags as ``k=v k=v`` (values percent-encoded)."""
    tags: dict[str, str] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if sep and key:
            tags[key] = unquote(value)
    return tags


def _as_float(value: FieldValue | None) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    return float(value)


class JournalScanner:
    """Feed journal lines (bytes, no newline) in journal order; then :meth:`finish`."""

    def __init__(self, *, plot: bool = False) -> None:
        self.stats = ScanStats()
        self._plot = plot
        self._meters: dict[str, _Meter] = {}
        self._head_cache: dict[bytes, _Meter] = {}
        self._records: list[RunRecord] = []
        # (run, phase) -> open trackers; run-wide opens remember whether they
        # target every meter (a start without a meter tag).
        self._open: dict[tuple[str, str | None], list[_Tracker]] = {}
        self._all_meters: dict[tuple[str, str | None], tuple[int, dict[str, str]]] = {}
        self._stops_without_start: Counter[str] = Counter()
        self._duplicate_starts = 0

    # -- reading the journal -------------------------------------------------

    def scan_dir(self, directory: str | os.PathLike[str]) -> None:
        for info in list_segments(directory):
            self.stats.segments += 1
            self._scan_segment(info.path, info.compressed)

    def _scan_segment(self, path: Path, compressed: bool) -> None:
        tail = b""
        try:
            blocks = _gzip_blocks(path) if compressed else _plain_blocks(path)
            for block in blocks:
                self.stats.bytes_read += len(block)
                lines = (tail + block).split(b"\n") if tail else block.split(b"\n")
                tail = lines.pop()
                self.feed_lines(lines)
        except FileNotFoundError:
            # Compressed and renamed since it was listed.
            gz = path.with_name(path.name + ".gz")
            if not compressed and gz.exists():
                self._scan_segment(gz, True)
            return
        except (zlib.error, OSError, _DamagedError) as exc:
            self.stats.damaged_segments.append(f"{path.name}: {exc}")
        if tail:
            self.stats.torn_lines += 1

    def feed_lines(self, lines: list[bytes]) -> None:
        """The hot loop, one call per block of lines.

        A ``wattd_power`` line whose head (measurement and tags) was seen before
        costs one split, one dict lookup and two number parses; the reading is
        queued on its meter and the queues are flushed into the run integrators
        at the end of the block or before any other line (so journal order holds).
        """
        self.stats.lines += len(lines)
        cache = self._head_cache
        for line in lines:
            parts = line.split(b" ")
            if len(parts) == 3:
                state = cache.get(parts[0])
                if state is not None:
                    fields = parts[1]
                    if fields.startswith(b"power_w="):
                        end = fields.find(b",")
                        try:
                            power = float(fields[8:end] if end > 0 else fields[8:])
                            t = int(parts[2])
                        except ValueError:
                            self.stats.bad_lines += 1
                            continue
                        if -_PLAUSIBLE_W < power < _PLAUSIBLE_W:
                            state.pending.append((t, power))
                        else:
                            self.stats.bad_lines += 1
                        continue
                elif parts[0].startswith(_POWER_PREFIX) and b"\\" not in parts[0]:
                    state = self._state_of_head(parts[0])
                    if state is not None:
                        # Learned this head: take the line again on the fast path.
                        self.feed_lines([line])
                        self.stats.lines -= 1
                        continue
            if line:
                self._flush_all()
                self._slow_line(line)
        self._flush_all()

    def _state_of_head(self, head: bytes) -> _Meter | None:
        for item in head[len(_POWER_PREFIX):].split(b","):
            if item.startswith(b"meter="):
                try:
                    meter = item[6:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
                if not meter:
                    return None
                if len(self._head_cache) >= _HEAD_CACHE_MAX:
                    self._head_cache.clear()
                state = self._meters.get(meter) or self._new_meter(meter)
                self._head_cache[head] = state
                return state
        return None

    def _flush_all(self) -> None:
        for state in self._meters.values():
            if state.pending:
                self._flush(state)

    def _flush(self, state: _Meter) -> None:
        """Feed a meter's queued readings (journal order) to its run integrators."""
        pending = state.pending
        state.pending = []
        self.stats.readings += len(pending)
        state.recent.extend(pending)
        last = pending[-1][0]
        if state.last_t is None or last > state.last_t:
            state.last_t = last
        if not state.active:
            return
        finished = False
        for tr in state.active:
            stop = tr.stop_ns
            if tr.record.plot is not None:
                for t, power in pending:
                    self._plot_add(tr, t, power)
            # Stops right after the first reading at or past the stop.
            taken = tr.integ.extend(pending, stop)
            if stop is not None and taken and pending[taken - 1][0] >= stop:
                finished = True
        if finished:
            keep = []
            for tr in state.active:
                if tr.stop_ns is not None and tr.integ.covers(tr.stop_ns):
                    self._resolve(tr, tr.stop_ns)
                else:
                    keep.append(tr)
            state.active = keep

    def _plot_add(self, tr: _Tracker, t: int, power: float) -> None:
        pts = tr.record.plot
        assert pts is not None
        if t < tr.record.start_ns or (tr.stop_ns is not None and t > tr.stop_ns):
            return
        tr.plot_tick += 1
        if tr.plot_tick < tr.plot_stride:
            return
        tr.plot_tick = 0
        pts.append((t, power))
        if len(pts) >= 2 * _PLOT_POINTS:
            del pts[1::2]
            tr.plot_stride *= 2

    def _new_meter(self, meter: str) -> _Meter:
        state = _Meter()
        self._meters[meter] = state
        # A run started for every meter also covers a meter first seen later.
        for key, (start_ns, tags) in self._all_meters.items():
            self._open_tracker(key[0], key[1], meter, start_ns, tags)
        return state

    # -- markers and run results -------------------------------------------

    def _slow_line(self, raw: bytes) -> None:
        stats = self.stats
        try:
            point = parse_line(raw.decode("utf-8"))
        except (UnicodeDecodeError, LineProtocolError):
            stats.bad_lines += 1
            return
        name = point.measurement
        if name == "wattd_power":
            self._slow_reading(point)
        elif name == "wattd_marker":
            stats.markers += 1
            self._on_marker(point)
        elif name == "wattd_run":
            stats.run_points += 1
            self._on_run_point(point)
        elif name in stats.unknown or len(stats.unknown) < 100:
            stats.unknown[name] += 1
        else:
            stats.unknown["(other)"] += 1

    def _slow_reading(self, point: Point) -> None:
        meter = point.tags.get("meter")
        power = _as_float(point.fields.get("power_w"))
        if not meter:
            self.stats.bad_lines += 1
            return
        if power is None:
            self.stats.readings_without_power += 1
            return
        if not -_PLAUSIBLE_W < power < _PLAUSIBLE_W:
            self.stats.bad_lines += 1
            return
        state = self._meters.get(meter) or self._new_meter(meter)
        state.pending.append((point.t_ns, power))
        self._flush(state)

    def _on_marker(self, point: Point) -> None:
        run = point.tags.get("run")
        verb = point.tags.get("verb")
        if not run or not verb:
            self.stats.bad_lines += 1
            return
        phase = point.tags.get("phase") or None
        meter = point.tags.get("meter") or None
        t = point.t_ns
        text = point.fields.get("text")
        tags = parse_text_tags(text) if isinstance(text, str) else {}
        if verb == "start":
            self._on_start(run, phase, meter, t, tags)
        elif verb in ("stop", "abort"):
            self._on_stop(run, phase, meter, t, verb)
        # `event` (annotations) and anything else: nothing to integrate.

    def _on_start(self, run: str, phase: str | None, meter: str | None, t: int,
                  tags: dict[str, str]) -> None:
        if phase is not None:
            # Opening a phase closes the run's current phase (on those meters).
            for (r, p), trackers in list(self._open.items()):
                if r == run and p is not None and p != phase:
                    self._close(trackers, r, p, meter, t=t, end="stop")
            run_trackers = self._open.get((run, None), [])
            run_tags = run_trackers[0].record.tags if run_trackers else {}
            tags = {**run_tags, **tags}
        key = (run, phase)
        if meter is None:
            if key in self._all_meters or key in self._open:
                self._duplicate_starts += 1
                return
            run_meters = [tr.record.meter for tr in self._open.get((run, None), [])]
            if phase is not None and run_meters and (run, None) not in self._all_meters:
                # A phase of a run open on some meters only: those meters.
                for name in run_meters:
                    self._open_tracker(run, phase, name, t, tags)
                return
            self._all_meters[key] = (t, tags)
            for name in self._meters:
                self._open_tracker(run, phase, name, t, tags)
            self._open.setdefault(key, [])
            return
        if any(tr.record.meter == meter for tr in self._open.get(key, [])):
            self._duplicate_starts += 1
            return
        self._open_tracker(run, phase, meter, t, tags)

    def _open_tracker(self, run: str, phase: str | None, meter: str, start_ns: int,
                      tags: dict[str, str]) -> None:
        record = RunRecord(run=run, phase=phase, meter=meter, start_ns=start_ns, tags=dict(tags))
        self._records.append(record)
        tr = _Tracker(record, self._plot)
        state = self._meters.get(meter)
        if state is None:
            state = _Meter()
            self._meters[meter] = state
        tr.integ.extend(state.recent)
        if record.plot is not None:
            for t, power in state.recent:
                self._plot_add(tr, t, power)
        state.active.append(tr)
        self._open.setdefault((run, phase), []).append(tr)

    def _on_stop(self, run: str, phase: str | None, meter: str | None, t: int,
                 verb: str) -> None:
        closed = 0
        if phase is None:
            # Closing a run closes its open phase too.
            for (r, p), trackers in list(self._open.items()):
                if r == run and p is not None:
                    self._close(trackers, r, p, meter, t=t, end=verb)
        open_trackers = self._open.get((run, phase))
        if open_trackers is not None:
            closed = self._close(open_trackers, run, phase, meter, t=t, end=verb)
        if not closed:
            label = run if phase is None else f"{run} phase {phase}"
            self._stops_without_start[f"{verb} {label}"] += 1

    def _close(self, trackers: list[_Tracker], run: str, phase: str | None, meter: str | None,
               *, t: int, end: str) -> int:
        key = (run, phase)
        if meter is None:
            self._all_meters.pop(key, None)
        closing = [tr for tr in trackers if meter is None or tr.record.meter == meter]
        for tr in closing:
            self._stop_tracker(tr, t, end)
        remaining = [tr for tr in trackers if tr not in closing]
        if remaining or key in self._all_meters:
            self._open[key] = remaining
        else:
            self._open.pop(key, None)
        # A start for every meter closed on all of them counts as one close even
        # before any meter was seen.
        return len(closing) or (1 if meter is None and not trackers else 0)

    def _stop_tracker(self, tr: _Tracker, t: int, end: str) -> None:
        tr.record.end = end
        tr.record.stop_ns = max(t, tr.record.start_ns)
        tr.stop_ns = tr.record.stop_ns
        if end == "abort":
            tr.record.aborted = True
        if tr.integ.covers(tr.stop_ns):
            self._resolve(tr, tr.stop_ns)
            state = self._meters[tr.record.meter]
            state.active = [x for x in state.active if x is not tr]

    def _resolve(self, tr: _Tracker, stop_ns: int) -> None:
        record = tr.record
        record.integrated_to_ns = stop_ns
        try:
            record.result = tr.integ.result(stop_ns)
        except ValueError as exc:
            record.note = ("no readings" if "no reading" in str(exc)
                           else "the stop marker came too late in the journal to integrate")
        if record.plot is not None:
            record.plot = [(t, p) for t, p in record.plot if t <= stop_ns]

    def _on_run_point(self, point: Point) -> None:
        run = point.tags.get("run")
        meter = point.tags.get("meter")
        if not run or not meter:
            self.stats.bad_lines += 1
            return
        phase = point.tags.get("phase") or None
        fields = point.fields
        start = fields.get("start_ns")
        start_ns = start if isinstance(start, int) and not isinstance(start, bool) else None
        record = self._find_record(run, phase, meter, start_ns, point.t_ns)
        if record is None:
            return
        tracker = next((tr for tr in self._open.get((run, phase), [])
                        if tr.record is record), None)
        if tracker is not None:
            # The daemon closed it itself (max_run_s) without a stop marker.
            aborted = fields.get("aborted") is True
            self._close(self._open[(run, phase)], run, phase, meter, t=point.t_ns,
                        end="abort" if aborted else "daemon")
            record.end = "daemon"
        record.counter_energy_j = _as_float(fields.get("counter_energy_j"))
        record.daemon_energy_j = _as_float(fields.get("energy_j"))
        record.gap_s = _as_float(fields.get("gap_s"))
        record.daemon_extrapolated_s = _as_float(fields.get("extrapolated_s"))
        record.aborted = record.aborted or fields.get("aborted") is True
        record.clock_step = fields.get("clock_step") is True
        for key, value in point.tags.items():
            if key not in ("run", "meter", "phase"):
                record.tags.setdefault(key, value)

    def _find_record(self, run: str, phase: str | None, meter: str, start_ns: int | None,
                     t_ns: int) -> RunRecord | None:
        for record in reversed(self._records):
            if record.run != run or record.phase != phase or record.meter != meter:
                continue
            if start_ns is not None and record.start_ns != start_ns:
                continue
            if start_ns is None and record.start_ns > t_ns:
                continue
            return record
        return None

    # -- the end ---------------------------------------------------------------

    def finish(self) -> ScanResult:
        for state in self._meters.values():
            for tr in state.active:
                record = tr.record
                if tr.stop_ns is not None:
                    # No reading at or after the stop: power held from the last one.
                    self._resolve(tr, tr.stop_ns)
                elif state.last_t is not None and state.last_t > record.start_ns:
                    self._resolve(tr, state.last_t)  # open: up to the last reading
                else:
                    record.note = "no readings since the start"
            state.active = []
        stats = self.stats
        for what, count in sorted(self._stops_without_start.items()):
            times = f" ({count} times)" if count > 1 else ""
            stats.notes.append(f"{what}: no matching start in the journal{times}")
        if self._duplicate_starts:
            stats.notes.append(f"{self._duplicate_starts} start marker(s) for a run already "
                               "open on that meter were ignored")
        records = sorted(self._records, key=lambda r: (r.start_ns, r.run, r.phase or "",
                                                       r.meter))
        return ScanResult(records, sorted(self._meters), stats)


def scan_journal(directory: str | os.PathLike[str], *, plot: bool = False) -> ScanResult:
    """Scan a journal directory (segments in order) in one streaming pass."""
    scanner = JournalScanner(plot=plot)
    scanner.scan_dir(directory)
    return scanner.finish()
