"""Simulated meters fed unpaced: as fast as the pipeline accepts (load tests, soak).

``wattd run --simulate --unpaced`` replaces each simulated meter's pty with an
in-process feed: the chip model's frames go, one frame per decoder call,
through the meter's real ``SerialSource`` (decoder, SPEC 7 stamp, reading)
into the pipeline, each stamped on both clocks at the moment it is fed (so
runs opened and closed by real markers bracket them). There is no wire
pacing: the feed runs while the pipeline's in-flight readings (in, not yet
journaled) stay under ``max_in_flight``, and yields to the event loop every
``frames_per_turn`` frames so the marker port, the writer and the sinks keep
running. The chip's own clock advances one frame period per frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wattd.clock.timesource import clock_pair
from wattd.simulator.chip_hlw8032 import FRAME_INTERVAL_S
from wattd.simulator.pty_server import FrameSource, PolledChip
from wattd.sources.serial_source import SerialSource

MAX_IN_FLIGHT = 50_000
FRAMES_PER_TURN = 200
BACKPRESSURE_SLEEP_S = 0.005


class UnpacedFeed:
    """One simulated meter fed into ``source`` with no wire pacing.
    ``await run()`` until ``stop()``; ``status()`` is the source's plus ``frames_fed``."""

    def __init__(self, source: SerialSource, chip: FrameSource | PolledChip, *,
                 in_flight: Callable[[], int], max_in_flight: int = MAX_IN_FLIGHT,
                 frames_per_turn: int = FRAMES_PER_TURN,
                 frame_interval_s: float = FRAME_INTERVAL_S) -> None:
        self.source = source
        self.chip = chip
        self.in_flight = in_flight
        self.max_in_flight = max_in_flight
        self.frames_per_turn = frames_per_turn
        self.frame_interval_s = frame_interval_s
        self.frames_fed = 0
        self.backpressure_waits = 0
        self._stopped = False

    def _frame(self, t_s: float) -> bytes:
        frame_at: Callable[[float], bytes] | None = getattr(self.chip, "frame_at", None)
        if frame_at is not None:  # a streamed chip (HLW8032 family)
            return frame_at(t_s)
        polled: PolledChip = self.chip  # type: ignore[assignment]
        return b"".join(polled.receive(self.source.decoder.poll_request() or b"", t_s))

    async def run(self) -> None:
        self.source.reconnector.connected()
        clock = self.source.clock
        feed = self.source.feed
        while not self._stopped:
            while self.in_flight() > self.max_in_flight and not self._stopped:
                self.backpressure_waits += 1
                await asyncio.sleep(BACKPRESSURE_SLEEP_S)
            for _ in range(self.frames_per_turn):
                frame = self._frame(self.frames_fed * self.frame_interval_s)
                self.frames_fed += 1
                real_ns, boot_ns = clock_pair(clock)
                feed(frame, real_ns, boot_ns)  # the path bytes read from the port take
            await asyncio.sleep(0)

    def stop(self) -> None:
        self._stopped = True

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.source.status())
        out.update(unpaced=True, frames_fed=self.frames_fed,
                   backpressure_waits=self.backpressure_waits)
        return out
