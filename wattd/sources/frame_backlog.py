"""Whole frames kept undecoded until the pipeline's next cycle (the daemon's CPU share).

At a meter's real rate the port wakes the daemon once per frame, and each
wake-up finds the interpreter's caches cold: decoding the frame and passing its
reading through the pipeline's stages then costs several times what it costs
in a batch. A source with a backlog only reads and stamps a frame that its
decoder would take whole (``takes_whole``: one aligned, valid frame, nothing
left buffered, so the tty's VMIN stays the frame size), and keeps it; the
pipeline feeds the kept frames, in order and with their read-time stamps, at
the start of its next cycle, or whenever something is about to look at the
readings (a marker datagram, the clock's verdict changing, a status). The
decoder and the stages see exactly the sequence they would see at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Deferral(Protocol):
    """The pipeline's side (wattd.daemon.pipeline.Pipeline)."""

    def keep(self, boot_ns: int) -> bool:
        """May a frame read at ``boot_ns`` wait for the next cycle? False while a
        stage needs readings at once (a stop waiting for its bracketing reading)."""
        ...

    def register_backlog(self, catch_up: Callable[[], None]) -> None:
        """``catch_up()`` feeds everything kept; the pipeline calls it before each cycle
        and before anything reads what the readings change."""
        ...


FeedFn = Callable[[bytes, int, int], None]


class FrameBacklog:
    """One source's kept frames: ``offer`` at read time, ``catch_up`` to feed them."""

    def __init__(self, feed: FeedFn, takes_whole: Callable[[bytes], bool],
                 deferral: Deferral) -> None:
        self._feed = feed
        self._takes_whole = takes_whole
        self._keep = deferral.keep
        self._frames: list[tuple[bytes, int, int]] = []
        self.kept = 0
        deferral.register_backlog(self.catch_up)

    def offer(self, data: bytes, real_ns: int, boot_ns: int) -> bool:
        """Keep ``data`` (True), or catch up so that the caller feeds it now, in order."""
        if self._takes_whole(data) and self._keep(boot_ns):
            self._frames.append((data, real_ns, boot_ns))
            self.kept += 1
            return True
        if self._frames:
            self.catch_up()
        return False

    def catch_up(self) -> None:
        frames = self._frames
        if frames:
            self._frames = []
            feed = self._feed
            for data, real_ns, boot_ns in frames:
                feed(data, real_ns, boot_ns)

    def __len__(self) -> int:
        return len(self._frames)
