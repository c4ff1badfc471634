"""A sink's status entry: backlog bytes (gzip segments at their uncompressed size),
-1 for an unreadable journal, and the point estimate from the average line size."""

from __future__ import annotations

import gzip
from pathlib import Path

from wattd.journal.segments import Position, segment_name
from wattd.sinks.status import sink_status, status_backlog_bytes, uncompressed_backlog_bytes


def test_backlog_counts_the_rest_of_the_cursor_segment_and_every_later_one(
        tmp_path: Path) -> None:
    (tmp_path / segment_name(1, True)).write_bytes(gzip.compress(b"a" * 1000))
    (tmp_path / segment_name(2)).write_bytes(b"b" * 300)
    (tmp_path / segment_name(3)).write_bytes(b"c" * 50)
    assert uncompressed_backlog_bytes(tmp_path, Position(0, 0)) == 1350
    assert uncompressed_backlog_bytes(tmp_path, Position(1, 400)) == 600 + 350
    assert uncompressed_backlog_bytes(tmp_path, Position(2, 300)) == 50
    assert uncompressed_backlog_bytes(tmp_path, Position(3, 50)) == 0


def test_an_unreadable_journal_is_a_backlog_of_minus_one(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "journal"
    not_a_directory.write_bytes(b"")
    assert status_backlog_bytes(not_a_directory, Position(0, 0)) == -1
    assert status_backlog_bytes(tmp_path / "missing", Position(0, 0)) == 0  # nothing yet
    assert status_backlog_bytes(tmp_path, Position(0, 0)) == 0


def test_sink_status_estimates_points_and_hides_retry_while_running() -> None:
    report = {"url": "http://db", "state": "retrying", "avg_line_bytes": 100.0,
              "retry_in_s": 4.0, "delivered_points": 7}
    status = sink_status(report, 1050)
    assert status["backlog_bytes"] == 1050
    assert status["backlog_points_estimate"] == 10
    assert status["retry_in_s"] == 4.0
    assert status["delivered_points"] == 7
    running = sink_status({**report, "state": "running"}, -1)
    assert running["retry_in_s"] is None
    assert running["backlog_points_estimate"] == 0
