"""Journal: segments, gzip, fsync cadence (injectable fsync), torn tail, bounds, reader."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import threading
from pathlib import Path

import pytest

from tests.journal_helpers import FakeTime, until
from tests.journal_helpers import power_line as _line
from wattd.config import JournalConfig
from wattd.journal import writer as writer_mod
from wattd.journal.reader import backlog_bytes, iter_lines
from wattd.journal.segments import Position, list_segments
from wattd.journal.writer import Journal


async def test_append_rotate_compress_and_read_back(tmp_path: Path) -> None:
    journal = Journal(JournalConfig(dir=str(tmp_path), segment_bytes=4096, max_bytes=1 << 20))
    await journal.open()
    for i in range(600):
        await journal.append([_line(i)])
    await journal.close()
    segments = list_segments(tmp_path)
    assert len(segments) >= 5
    assert all(s.compressed for s in segments[:-1]), "closed segments are gzipped"
    assert not segments[-1].compressed
    # A closed segment is plain line protocol once unzipped (curl-able).
    first = gzip.decompress(segments[0].path.read_bytes()).decode()
    assert first.splitlines()[0] == _line(0)
    lines = [line for _, line in iter_lines(tmp_path)]
    assert lines == [_line(i) for i in range(600)]


async def test_fsync_cadence_readings_vs_durable(tmp_path: Path) -> None:
    synced: list[int] = []
    fake = FakeTime()
    journal = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=0.2),
                      fsync=synced.append, clock=fake)
    await journal.open()
    await journal.append([_line(1)])
    await asyncio.sleep(0.15)
    assert synced == [], "readings are not fsynced before the interval has passed"
    fake.now += 0.25
    await until(lambda: len(synced) == 1)
    await journal.append([_line(2)], durable=True)
    assert len(synced) == 2, "durable points (markers, runs) are fsynced at once"
    await asyncio.sleep(0.15)
    fake.now += 1.0
    await asyncio.sleep(0.15)
    assert len(synced) == 2, "nothing dirty: no extra fsync"
    await journal.append([_line(3)])
    await journal.close()
    assert len(synced) == 3, "close fsyncs what is dirty"


async def test_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    journal = Journal(JournalConfig(dir=str(tmp_path)))
    await journal.open()
    await journal.append([_line(1), _line(2)])
    await journal.close()
    seg = list_segments(tmp_path)[-1].path
    with open(seg, "ab") as fh:
        fh.write(b"wattd_power,meter=a power_w=")  # a crash mid-write
    assert [line for _, line in iter_lines(tmp_path)] == [_line(1), _line(2)]
    journal = Journal(JournalConfig(dir=str(tmp_path)))
    await journal.open()
    await journal.append([_line(3)])
    await journal.close()
    assert journal.torn_lines_cut == 1
    assert [line for _, line in iter_lines(tmp_path)] == [_line(1), _line(2), _line(3)]


async def test_size_bound_deletes_delivered_first_and_counts_undelivered(tmp_path: Path) -> None:
    cfg = JournalConfig(dir=str(tmp_path), segment_bytes=2048, max_bytes=16384, compress=False)
    journal = Journal(cfg)
    await journal.open()
    journal.cursors.save("sink", Position(1, 0))  # a sink that delivered nothing
    for i in range(1500):
        await journal.append([_line(i)])
        total = sum(s.size for s in list_segments(tmp_path))
        assert total <= cfg.max_bytes
    await journal.close()
    assert journal.segments_deleted > 0
    assert journal.undelivered_bytes_dropped > 0
    # The newest data survives; the oldest went.
    lines = [line for _, line in iter_lines(tmp_path)]
    assert lines[-1] == _line(1499)
    assert _line(0) not in lines


async def test_delivered_segments_deleted_without_counting_loss(tmp_path: Path) -> None:
    cfg = JournalConfig(dir=str(tmp_path), segment_bytes=2048, max_bytes=16384, compress=False)
    journal = Journal(cfg)
    await journal.open()
    journal.cursors.save("sink", Position(1, 0))
    for i in range(1500):
        await journal.append([_line(i)])
        journal.cursors.save("sink", journal.end_position())  # delivered as it goes
    await journal.close()
    assert journal.segments_deleted > 0
    assert journal.undelivered_bytes_dropped == 0


async def test_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    from wattd.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    journal = Journal(JournalConfig(dir=str(blocker / "sub")))
    with pytest.raises(ConfigError, match="not writable"):
        await journal.open()


async def test_reader_walks_segments_and_resumes(tmp_path: Path) -> None:
    journal = Journal(JournalConfig(dir=str(tmp_path), segment_bytes=4096))
    await journal.open()
    for i in range(500):
        await journal.append([_line(i)])
    assert len(list_segments(tmp_path)) > 3
    got: list[str] = []
    pos: Position | None = None
    while True:  # resume after every 77 lines, as a cursor would
        batch = list(itertools.islice(iter_lines(tmp_path, pos), 77))
        if not batch:
            break
        pos = batch[-1][0]
        got.extend(line for _, line in batch)
    assert got == [_line(i) for i in range(500)]
    assert backlog_bytes(tmp_path, pos) == 0
    await journal.append([_line(500)])
    after = list(iter_lines(tmp_path, pos))
    assert [line for _, line in after] == [_line(500)]
    assert pos is not None
    assert after[0][0] > pos
    await journal.close()


def test_reader_skips_partial_last_line(tmp_path: Path) -> None:
    (tmp_path / "00000001.lp").write_bytes(f"{_line(1)}\n{_line(2)}\nwattd_po".encode())
    got = list(iter_lines(tmp_path))
    assert [line for _, line in got] == [_line(1), _line(2)]
    assert got[-1][0] == Position(1, len(_line(1)) + len(_line(2)) + 2)


async def test_a_segment_deleted_while_being_compressed_stays_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The size bound deletes a closed segment whose gzip copy a worker thread is
    still writing: the copy must not be published as a .gz afterwards (the
    deleted data would come back and the directory go over its bound)."""
    release = threading.Event()
    in_flight: list[Path] = []
    original = writer_mod.gzip_to_tmp

    def slow_gzip(src: Path) -> Path:
        tmp = original(src)
        if len(in_flight) < 2:  # hold two copies (of the worker threads the appends share)
            in_flight.append(src)
            release.wait(10.0)  # until the bound has deleted their segments
        return tmp

    monkeypatch.setattr(writer_mod, "gzip_to_tmp", slow_gzip)
    cfg = JournalConfig(dir=str(tmp_path), segment_bytes=2048, max_bytes=16384, compress=True)
    journal = Journal(cfg)
    await journal.open()
    for i in range(1500):
        await journal.append([_line(i)])
    await until(lambda: len(in_flight) >= 2, 10.0, 0.01)
    deleted_in_flight = [src for src in in_flight if not src.exists()]
    assert deleted_in_flight, "the bound deleted no segment whose copy was being written"
    release.set()
    await journal.close()
    assert journal.segments_deleted > 0
    for src in deleted_in_flight:
        assert not src.with_name(src.name + ".gz").exists(), src.name
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert sum(s.size for s in list_segments(tmp_path)) <= cfg.max_bytes
    lines = [line for _, line in iter_lines(tmp_path)]
    assert lines[-1] == _line(1499)
    assert lines == sorted(lines, key=lambda line: int(line.rsplit(" ", 1)[1]))


async def test_open_clears_leftovers_of_a_crash_during_compression(tmp_path: Path) -> None:
    """A crash can leave a segment both plain and gzip (between the rename and the
    removal of the plain file) and an unfinished .gz.tmp: open() removes the
    copy that is never read, and a bound that deletes the segment deletes both."""
    body = "".join(f"{_line(i)}\n" for i in range(200)).encode()
    (tmp_path / "00000001.lp").write_bytes(body)
    (tmp_path / "00000001.lp.gz").write_bytes(gzip.compress(body))
    (tmp_path / "00000002.lp.gz.tmp").write_bytes(b"\x1f\x8b unfinished")
    (tmp_path / "00000003.lp").write_bytes(f"{_line(200)}\n".encode())
    # Segment 1 alone is over max_bytes: the size bound open() enforces deletes it.
    cfg = JournalConfig(dir=str(tmp_path), segment_bytes=4096, max_bytes=len(body) - 1)
    journal = Journal(cfg)
    await journal.open()
    assert not (tmp_path / "00000002.lp.gz.tmp").exists()
    await journal.close()
    assert not (tmp_path / "00000001.lp").exists()
    assert not (tmp_path / "00000001.lp.gz").exists()
    assert journal.segments_deleted == 1
    assert [line for _, line in iter_lines(tmp_path)] == [_line(200)]
