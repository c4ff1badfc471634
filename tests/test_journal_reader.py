"""The journal reader on damaged and compressed segments, and what it reports."""

from __future__ import annotations

import gzip
from pathlib import Path

from wattd.journal.reader import ReadStats, iter_blocks, iter_line_blocks, iter_raw_lines
from wattd.journal.segments import Position


def _lines(n: int, prefix: str = "x") -> bytes:
    return b"".join(f"{prefix} {i}\n".encode() for i in range(n))


def test_a_small_truncated_gzip_segment_gives_what_precedes_the_damage(tmp_path: Path) -> None:
    data = gzip.compress(_lines(2000))
    (tmp_path / "00000001.lp.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "00000002.lp").write_bytes(_lines(3, "y"))
    lines = [line for _, line in iter_raw_lines(tmp_path)]
    assert 100 < len(lines) < 2000
    assert lines[:2] == [b"x 0", b"x 1"]
    assert lines[-3:] == [b"y 0", b"y 1", b"y 2"]
    stats = ReadStats()
    blocks = list(iter_line_blocks(tmp_path, stats))
    assert sum(len(b.split(b"\n")) for b in blocks) == len(lines)
    assert stats.segments == 2
    assert len(stats.damaged_segments) == 1
    assert stats.damaged_segments[0].startswith("00000001.lp.gz: ")
    assert stats.torn_lines == 1  # the line cut by the damage


def test_gzip_members_and_a_position_inside_a_compressed_segment(tmp_path: Path) -> None:
    first, second = _lines(500), _lines(500, "z")
    (tmp_path / "00000001.lp.gz").write_bytes(gzip.compress(first) + gzip.compress(second))
    everything = list(iter_raw_lines(tmp_path))
    assert len(everything) == 1000
    middle, _ = everything[699]
    rest = [line for _, line in iter_raw_lines(tmp_path, Position(1, middle.offset))]
    assert rest == [line for _, line in everything[700:]]
    assert rest[0] == b"z 200"


def test_stats_count_bytes_and_torn_tails(tmp_path: Path) -> None:
    (tmp_path / "00000001.lp").write_bytes(_lines(10) + b"torn")
    (tmp_path / "00000002.lp.gz").write_bytes(gzip.compress(_lines(5)))
    stats = ReadStats()
    assert b"".join(b + b"\n" for b in iter_line_blocks(tmp_path, stats)) == (
        _lines(10) + _lines(5))
    assert stats.bytes_read == len(_lines(10)) + 4 + len(_lines(5))
    assert stats.torn_lines == 1
    assert stats.damaged_segments == []
    assert [count for _, _, count in iter_blocks(tmp_path)] == [10, 5]


def test_a_segment_that_is_not_gzip_is_reported_damaged(tmp_path: Path) -> None:
    (tmp_path / "00000001.lp.gz").write_bytes(b"not gzip at all\n")
    (tmp_path / "00000002.lp").write_bytes(b"ok\n")
    stats = ReadStats()
    assert list(iter_line_blocks(tmp_path, stats)) == [b"ok"]
    assert len(stats.damaged_segments) == 1
