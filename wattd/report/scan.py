"""One streaming pass over the journal: runs from markers, energy per run and meter.

The journal is read through :mod:`wattd.journal.reader` in large blocks
(plain and gzip), never loaded whole. ``wattd_power`` lines, nearly all of
the journal, take a fast path of byte-string operations (meter, ``power_w``
and the timestamp only); markers, run results and any line with an escape
go through the full line-protocol parser. Memory is bounded by the number
of runs, not readings. Runs and their energies: :mod:`wattd.report.runs`.

Runs without a stop (a journal copied mid-run, a crashed daemon) are
integrated up to the meter's last reading and flagged ``open``; they are
listed but kept out of statistics. Nothing in a journal is fatal: torn lines,
unparsable lines, unknown measurements, stops without a start and damaged
gzip segments are counted and reported as notes.
"""

from __future__ import annotations

import os

from wattd.journal.reader import ReadStats, iter_line_blocks
from wattd.lineprotocol import LineProtocolError, Point, parse_line
from wattd.markers.points import MARKER_MEASUREMENT, RUN_MEASUREMENT
from wattd.readings import POWER_MEASUREMENT
from wattd.report.records import ScanResult, ScanStats
from wattd.report.runs import MeterReadings, RunTracking, as_float

_HEAD_CACHE_MAX = 100_000
_POWER_PREFIX = POWER_MEASUREMENT.encode() + b","
_PLAUSIBLE_W = 1e12


class JournalScanner:
    """Feed journal lines (bytes, no newline) in journal order; then :meth:`finish`."""

    def __init__(self, *, plot: bool = False) -> None:
        self.stats = ScanStats()
        self._runs = RunTracking(self.stats, plot=plot)
        self._head_cache: dict[bytes, MeterReadings] = {}

    def scan_dir(self, directory: str | os.PathLike[str]) -> None:
        read = ReadStats()
        for block in iter_line_blocks(directory, read):
            self.feed_lines(block.split(b"\n"))
        stats = self.stats
        stats.segments += read.segments
        stats.bytes_read += read.bytes_read
        stats.torn_lines += read.torn_lines
        stats.damaged_segments += read.damaged_segments

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
                self._runs.flush_all()
                self._slow_line(line)
        self._runs.flush_all()

    def _state_of_head(self, head: bytes) -> MeterReadings | None:
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
                state = self._head_cache[head] = self._runs.meter(meter)
                return state
        return None

    def _slow_line(self, raw: bytes) -> None:
        stats = self.stats
        try:
            point = parse_line(raw.decode("utf-8"))
        except (UnicodeDecodeError, LineProtocolError):
            stats.bad_lines += 1
            return
        name = point.measurement
        if name == POWER_MEASUREMENT:
            self._slow_reading(point)
        elif name == MARKER_MEASUREMENT:
            stats.markers += 1
            self._runs.on_marker(point)
        elif name == RUN_MEASUREMENT:
            stats.run_points += 1
            self._runs.on_run_point(point)
        elif name in stats.unknown or len(stats.unknown) < 100:
            stats.unknown[name] += 1
        else:
            stats.unknown["(other)"] += 1

    def _slow_reading(self, point: Point) -> None:
        meter = point.tags.get("meter")
        power = as_float(point.fields.get("power_w"))
        if not meter:
            self.stats.bad_lines += 1
            return
        if power is None:
            self.stats.readings_without_power += 1
            self._runs.seen(self._runs.meter(meter), point.t_ns)
            return
        if not -_PLAUSIBLE_W < power < _PLAUSIBLE_W:
            self.stats.bad_lines += 1
            return
        state = self._runs.meter(meter)
        state.pending.append((point.t_ns, power))
        self._runs.flush(state)

    def finish(self) -> ScanResult:
        records = self._runs.finish()
        return ScanResult(records, sorted(self._runs.meters), self.stats)


def scan_journal(directory: str | os.PathLike[str], *, plot: bool = False) -> ScanResult:
    """Scan a journal directory (segments in order) in one streaming pass."""
    scanner = JournalScanner(plot=plot)
    scanner.scan_dir(directory)
    return scanner.finish()
