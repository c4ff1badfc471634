"""Journal fsync cadence: a readings append due for its fsync asks the sync thread (no wait);
durable points are fsynced before the append returns (injectable fsync)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.journal_helpers import FakeTime, until
from tests.journal_helpers import power_line as _line
from wattd.config import JournalConfig
from wattd.journal.reader import iter_lines
from wattd.journal.segments import list_segments
from wattd.journal.writer import Journal


async def test_fsync_is_asked_by_the_append_whose_successor_would_be_late(
        tmp_path: Path) -> None:
    synced: list[str] = []  # the file each fsync was of (its descriptor is a duplicate)

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.fsync(fd)

    fake = FakeTime()
    journal = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=1.0),
                      fsync=fsync, clock=fake)
    await journal.open()
    # t=0.8: the next append (1.2) would miss the deadline (1.0) -> fsync now; t=1.6 likewise.
    expected = [0, 0, 1, 1, 2, 2]
    counts = []
    for i in range(6):  # an append every 0.4 s, the pipeline's usual cadence
        await journal.append([_line(i)])
        await until(lambda i=i: len(synced) >= expected[i])  # the thread's fsync is done
        counts.append(len(synced))
        fake.now += 0.4
    assert counts == expected
    assert journal.fsyncs == 2
    # Every fsync was of the segment being written.
    [active] = list_segments(tmp_path)
    assert set(synced) == {str(active.path)}
    await journal.close()
    assert [line for _, line in iter_lines(tmp_path)] == [_line(i) for i in range(6)]


async def test_durable_append_writes_and_fsyncs_in_one_go(tmp_path: Path) -> None:
    synced: list[int] = []
    journal = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=3600.0),
                      fsync=synced.append, clock=FakeTime())
    await journal.open()
    await journal.append([_line(1)])
    assert synced == []
    await journal.append([_line(2), _line(3)], durable=True)
    assert len(synced) == 1
    await journal.close()
    assert len(synced) == 1, "nothing dirty at close"
    assert [line for _, line in iter_lines(tmp_path)] == [_line(1), _line(2), _line(3)]


async def test_a_failed_fsync_in_the_write_hop_is_retried_later(tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        os.fsync(fd)

    fake = FakeTime()
    journal = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=0.05), fsync=flaky_fsync,
                      clock=fake)
    await journal.open()
    fake.now += 1.0  # due now: this append asks the sync thread
    await journal.append([_line(1)])  # readings: the error is logged, not raised
    assert [line for _, line in iter_lines(tmp_path)] == [_line(1)], "the data is written"
    await until(lambda: journal.fsyncs == 1)  # the fallback timer tries again
    assert len(calls) == 2, "the thread's failed fsync, then the fallback's"
    calls.clear()  # the next fsync fails again
    with pytest.raises(OSError):  # durable points: the caller is told
        await journal.append([_line(2)], durable=True)
    await journal.close()
    assert [line for _, line in iter_lines(tmp_path)] == [_line(1), _line(2)]


async def test_append_now_writes_at_once_or_says_it_cannot(tmp_path: Path) -> None:
    """The pipeline's cycle appends without awaiting; what must await (the journal busy
    with a durable append, a write that would fill the segment) is refused, unwritten."""
    release = asyncio.Event()
    synced: list[int] = []
    loop = asyncio.get_running_loop()

    def slow_fsync(fd: int) -> None:  # in a worker thread: holds the durable append
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        synced.append(fd)

    fake = FakeTime()
    journal = Journal(JournalConfig(dir=str(tmp_path), fsync_interval_s=1.0, segment_bytes=4096),
                      fsync=slow_fsync, clock=fake)
    await journal.open()
    assert journal.append_now([_line(1)])
    assert [line for _, line in iter_lines(tmp_path)] == [_line(1)], "written before it returns"
    durable = asyncio.create_task(journal.append([_line(2)], durable=True))
    await until(lambda: sum(1 for _ in iter_lines(tmp_path)) == 2)  # written, fsync awaited
    assert not journal.append_now([_line(3)]), "a durable append holds the journal"
    release.set()
    await durable
    assert journal.append_now([_line(3)])
    big = [_line(i) for i in range(4, 4 + 4096 // len(_line(4)))]
    assert not journal.append_now(big), "it would fill the segment: append() rotates"
    await journal.append(big)
    assert len(list_segments(tmp_path)) == 2
    fake.now += 2.0  # the fsync deadline has passed: this append asks the sync thread
    fsyncs = journal.fsyncs
    assert journal.append_now([_line(99)])
    await until(lambda: journal.fsyncs == fsyncs + 1)
    await journal.close()
    assert [line for _, line in iter_lines(tmp_path)] == [
        _line(1), _line(2), _line(3), *big, _line(99)]
