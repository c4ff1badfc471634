"""Segment files: names, listing (one entry per number, plain preferred), cutting
appends at line ends so no segment outgrows its size by more than one line."""

from __future__ import annotations

import gzip
from pathlib import Path

from wattd.journal.segments import list_segments, segment_name, split_at_lines


def test_listing_prefers_the_plain_form_and_skips_other_files(tmp_path: Path) -> None:
    (tmp_path / segment_name(2)).write_bytes(b"x\n")
    (tmp_path / segment_name(2, True)).write_bytes(gzip.compress(b"x\n"))
    (tmp_path / segment_name(1, True)).write_bytes(gzip.compress(b"y\n"))
    (tmp_path / "cursor-sink.json").write_text("{}")
    listed = list_segments(tmp_path)
    assert [(s.number, s.compressed) for s in listed] == [(1, True), (2, False)]
    assert list_segments(tmp_path / "missing") == []


def test_split_at_lines_cuts_after_the_line_that_reaches_the_size() -> None:
    data = b"".join(b"%03d\n" % i for i in range(10))  # 10 lines of 4 bytes
    assert split_at_lines(data, 100, 100) == [data]
    pieces = split_at_lines(data, 6, 12)
    assert b"".join(pieces) == data
    assert pieces == [data[:8], data[8:20], data[20:32], data[32:]]
    assert all(piece.endswith(b"\n") for piece in pieces)
    assert split_at_lines(b"one long line\n", 3, 3) == [b"one long line\n"]
