"""Batches read the journal in blocks: the lines, line counts and positions a
sink is given must be exactly those of a naive reference (every segment read whole,
gunzipped, split at newlines), whatever the batch size, across plain and gzip
segments, blank lines and a torn last line; the line reader (`iter_raw_lines`,
built on the blocks) must give the same lines and positions."""

from __future__ import annotations

import asyncio
import gzip
import random
from pathlib import Path

import pytest

from wattd.journal import reader as reader_mod
from wattd.journal.cursor import CursorStore
from wattd.journal.reader import iter_blocks, iter_raw_lines
from wattd.journal.segments import Position, segment_name
from wattd.sinks.batches import BatchReader, nth_newline, split_lines
from wattd.sinks.delivery import START, Delivery


class NullSink:
    name = "null"
    url = "null://"

    async def write(self, lines: object) -> None:
        raise AssertionError("not used")

    async def reload_credentials(self) -> None:
        return None

    async def close(self) -> None:
        return None


def make_journal(tmp_path: Path, seed: int) -> Path:
    rng = random.Random(seed)
    directory = tmp_path / "journal"
    directory.mkdir()
    for number in (1, 2, 3, 5):
        lines = [f"m,meter=s{number} f={rng.random()},n={i}i {i}".encode()
                 * rng.randint(1, 4) for i in range(rng.randint(1, 900))]
        if number == 2:
            lines[3:3] = [b"", b""]  # blank lines: skipped, their bytes still counted
            lines.insert(0, b"")
        body = b"\n".join(lines) + b"\n"
        if number == 5:
            body += b"m torn=1"  # the writer is mid-line
        if number in (1, 3):
            (directory / segment_name(number, True)).write_bytes(gzip.compress(body))
        else:
            (directory / segment_name(number)).write_bytes(body)
    return directory


def reference_lines(directory: Path, start: Position | None = None
                    ) -> list[tuple[Position, bytes]]:
    """(position after the line, line) of every complete non-empty line after
    `start`, each segment read whole: the plain reading the blocks must equal."""
    out: list[tuple[Position, bytes]] = []
    for path in sorted(directory.iterdir()):
        number = int(path.name.split(".")[0])
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        pos = 0
        for line in data.split(b"\n")[:-1]:  # the last piece is torn (or empty)
            pos += len(line) + 1
            if line and (start is None or Position(number, pos) > start):
                out.append((Position(number, pos), line))
    return out


def test_nth_newline() -> None:
    rng = random.Random(7)
    for _ in range(200):
        block = b"\n".join(b"x" * rng.randint(1, 50) for _ in range(rng.randint(2, 60)))
        truth = [i for i, c in enumerate(block) if c == 0x0A]
        for k in range(1, len(truth) + 1):
            assert nth_newline(block, k, len(truth)) == truth[k - 1]


@pytest.mark.parametrize("seed", [1, 2])
def test_iter_blocks_matches_the_reference(tmp_path: Path, seed: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "BLOCK_BYTES", 997)  # many blocks, odd cuts
    directory = make_journal(tmp_path, seed)
    expected = reference_lines(directory)
    assert len(expected) > 100
    for start in (None, Position(0, 0), expected[10][0], expected[-5][0], Position(4, 0)):
        want = reference_lines(directory, start)
        assert list(iter_raw_lines(directory, start)) == want
        got: list[tuple[Position, bytes]] = []
        for end, block, count in iter_blocks(directory, start):
            lines = block.split(b"\n")
            assert len(lines) == count
            assert all(lines)
            assert want[len(got) + count - 1][0] == end
            got.extend((Position(0, 0), line) for line in lines)
        assert [line for _, line in got] == [line for _, line in want]


@pytest.mark.parametrize("batch", [1, 3, 250, 100_000])
def test_pull_takes_batch_size_lines_and_their_end(tmp_path: Path, batch: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "BLOCK_BYTES", 1500)
    directory = make_journal(tmp_path, 3)
    expected = reference_lines(directory)
    reader = BatchReader(directory)
    after = Position(0, 0)
    taken = 0
    while True:
        blocks, count, end, nbytes = reader.pull(batch, after)
        if not count:
            break
        lines = split_lines(blocks)
        assert count == len(lines) == min(batch, len(expected) - taken)
        assert lines == [line for _, line in expected[taken:taken + count]]
        assert end == expected[taken + count - 1][0]
        assert nbytes == sum(len(line) + 1 for line in lines)
        taken += count
        after = end
    reader.close()
    assert taken == len(expected)


class RecordingSink(NullSink):
    """Acknowledges every batch; records its lines and the cursor saved before it."""

    def __init__(self, directory: Path) -> None:
        self.cursors = CursorStore(directory)
        self.batches: list[tuple[list[bytes], Position | None]] = []

    def write_blocking(self, batch: list[bytes]) -> None:
        self.batches.append((split_lines(batch), self.cursors.load(self.name)))


@pytest.mark.parametrize("batch", [1, 3, 250, 100_000])
async def test_batches_take_batch_size_lines_and_the_cursor_their_end(
        tmp_path: Path, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_mod, "BLOCK_BYTES", 1500)
    directory = make_journal(tmp_path, 3)
    expected = reference_lines(directory)
    sink = RecordingSink(directory)
    delivery = Delivery(sink, directory, batch_size=batch, flush_interval_s=0.0)
    delivery.start()
    try:
        async def delivered() -> None:
            while delivery.delivered_points < len(expected):  # noqa: ASYNC110 - another task
                await asyncio.sleep(0.01)
        await asyncio.wait_for(delivered(), 60)
    finally:
        await delivery.stop()
    taken = 0
    cursor_before: Position | None = START  # a new sink's cursor, saved as it starts
    for lines, saved in sink.batches:
        count = len(lines)
        assert count == min(batch, len(expected) - taken)
        assert lines == [line for _, line in expected[taken:taken + count]]
        assert saved == cursor_before  # the previous batch's end, saved once acknowledged
        taken += count
        cursor_before = expected[taken - 1][0]
    assert taken == len(expected)
    assert delivery.cursor == cursor_before == CursorStore(directory).load(sink.name)


def test_reader_follows_a_rotation_without_reopening(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """At the end of the active segment the reader looks for newer ones: the writer
    rotated, so it reads its open file to the end and goes on, never reopening the
    old segment (which is being compressed; here it is gone altogether)."""
    monkeypatch.setattr(reader_mod, "BLOCK_BYTES", 64)
    first = [f"m n={i}i {i}".encode() for i in range(20)]
    seg1 = tmp_path / segment_name(1)
    seg1.write_bytes(b"\n".join(first[:10]) + b"\n")
    blocks = iter_blocks(tmp_path)
    got = split_lines([next(blocks)[1]])
    with seg1.open("ab") as fh:  # the writer appends, then rotates
        fh.write(b"\n".join(first[10:]) + b"\n")
    (tmp_path / segment_name(2)).write_bytes(b"m n=99i 99\n")
    seg1.unlink()
    ends = []
    for end, block, _count in blocks:
        got.extend(block.split(b"\n"))
        ends.append(end)
    assert got == [*first, b"m n=99i 99"]
    assert ends[-1] == Position(2, 11)
