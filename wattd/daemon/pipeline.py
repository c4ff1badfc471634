"""The reading pipeline: sources -> stages -> journal.

Sources call :meth:`Pipeline.on_reading` from the event loop. The stages are
an ordered list given by the daemon (clock stamp, run tagging with hold-back,
clock sync gate). Readings that come out of the last stage are written to the
journal in batches by one writer task, so a burst of readings costs one
journal write. Sources may keep whole frames undecoded until the next cycle
(wattd.sources.frame_backlog: ``urgent_now``, ``register_backlog``, ``catch_up``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

from wattd.clock.timesource import Clock
from wattd.daemon.component import Spawn
from wattd.journal.writer import Journal
from wattd.logsetup import get_logger
from wattd.readings import Reading

log = get_logger("wattd.pipeline")

# Readings are written in batches: a journal write costs a worker-thread hop (and
# two or three event-loop wake-ups), so at the chip's real rate the batch length
# sets most of the daemon's CPU share. The batch adapts each cycle so that the
# newest journalled reading of every meter stays younger than this share of
# journal.fsync_interval_s (SPEC 4: a crash loses at most that interval; the rest
# is margin for the reading that triggers a cycle and for scheduling) ...
FRESHNESS_SHARE = 0.85
# ... within these bounds: never shorter than WRITE_BATCH_S (or a quarter of a
# short fsync interval), never longer than half the fsync interval.
WRITE_BATCH_S = 0.2
MAX_BATCH_SHARE = 0.6
# A cycle is started by the first reading after it is due (the loop is awake
# then anyway: no timer wake-up); this timer, the batch plus this slack, starts it
# when no reading comes (a quiet meter's held-back readings are still released).
QUIET_SLACK_S = 0.15


class Stage(Protocol):
    """One step between the sources and the journal. Readings pass the stages in
    order; a stage may hold a reading back and let it go later."""

    def push(self, reading: Reading) -> Reading | None:
        """Take a reading as it is taken: return it to pass it on at once, or None to
        hold it back."""

    def pop_ready(self, now_boot_ns: int) -> Sequence[Reading]:
        """Once per writer cycle: the held readings that go on now, oldest first."""

    def flush_all(self) -> Sequence[Reading]:
        """Shutdown: everything still held, oldest first."""


class Pipeline:
    """Sources -> ``stages`` (in order) -> journal; it owns its writer task."""

    def __init__(self, journal: Journal, clock: Clock, stages: Sequence[Stage] = (), *,
                 spawn: Spawn | None = None, urgent: Callable[[], bool] | None = None) -> None:
        self.journal = journal
        self.clock = clock
        self.stages = tuple(stages)
        self._pushes = tuple(stage.push for stage in self.stages)  # the hot path's calls
        self._spawn = spawn
        self.writer: asyncio.Task[None] | None = None
        self._released: list[Reading] = []  # past every stage, not yet taken by a cycle
        self._ready: list[Reading] = []  # taken by a cycle, not yet journalled
        self.readings_in = 0
        self.readings_written = 0
        self.last_reading: dict[str, Reading] = {}
        self.progress = 0  # bumped by the writer task each cycle (watchdog liveness)
        interval = journal.cfg.fsync_interval_s
        self.min_batch_s = min(WRITE_BATCH_S, interval / 4)
        self.max_batch_s = max(self.min_batch_s, interval * MAX_BATCH_SHARE)
        self.freshness_s = interval * FRESHNESS_SHARE
        self.batch_s = self.min_batch_s  # the current cycle's length (adapted each cycle)
        self.next_cycle_boot_ns = 0  # CLOCK_BOOTTIME at which a reading starts the next cycle
        self._wake = asyncio.Event()
        self._readings_at_cycle = 0
        # Sources' kept frames: fed by catch_up(); none kept while urgent() (a stop waits).
        self._urgent = urgent
        self.urgent_now = False
        self._backlogs: tuple[Callable[[], None], ...] = ()

    def register_backlog(self, catch_up: Callable[[], None]) -> None:
        self._backlogs = (*self._backlogs, catch_up)

    def update_urgency(self) -> None:
        """After the marker engine ran: does a stage need readings at once now (a stop
        waits for its bracketing reading)? Sources' reader threads read ``urgent_now``
        per frame and then hand each read over at once. Turning urgent feeds what was
        kept meanwhile (a read kept just before the flag changed)."""
        urgent = self._urgent is not None and self._urgent()
        if urgent != self.urgent_now:
            self.urgent_now = urgent
            if urgent:
                self.catch_up()

    def catch_up(self) -> None:
        """Feed every source's kept frames now: before each cycle, and before anything
        reads or changes what readings go through (markers, the clock's verdict)."""
        for catch_up in self._backlogs:
            catch_up()

    def on_reading(self, reading: Reading) -> None:
        self.readings_in += 1
        self.last_reading[reading.meter] = reading
        for push in self._pushes:
            passed = push(reading)
            if passed is None:
                break
            reading = passed
        else:
            self._released.append(reading)
        if self.clock.boottime_ns() >= self.next_cycle_boot_ns:
            self._wake.set()

    def _release(self, now_boot_ns: int) -> list[Reading]:
        """One cycle: what each stage lets go now moves on through the stages after it."""
        moving: list[Reading] = []
        for stage in self.stages:
            if moving:
                moving = [out for held in moving if (out := stage.push(held)) is not None]
            moving.extend(stage.pop_ready(now_boot_ns))
        released, self._released = self._released, []
        released.extend(moving)
        return released

    async def start(self) -> None:
        run = self.run()
        self.writer = (self._spawn("pipeline", run) if self._spawn is not None
                       else asyncio.ensure_future(run))

    async def stop(self) -> None:
        """Stop the writer, then write everything the stages still hold."""
        if self.writer is not None:
            self.writer.cancel()
            await asyncio.gather(self.writer, return_exceptions=True)
        await self.drain()

    async def run(self) -> None:
        """Writer task: moves released readings into the journal, one batch per cycle.

        A reading enters the stages at once (the marker engine sees it in
        ``on_reading``); this task releases and writes what is ready once per
        cycle of ``batch_s``, started by the first reading after the cycle is due,
        or by a timer when no reading comes."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._wake.is_set():
                # A timer handle, not wait_for(): no task per cycle on this hot path;
                # cancelled before it fires while readings keep coming.
                # Sources that keep their frames (reader threads) start no cycle: the
                # timer is the cycle then, due at once.
                slack = 0.0 if self._backlogs else QUIET_SLACK_S
                timer = loop.call_later(self.batch_s + slack, self._wake.set)
                await self._wake.wait()
                timer.cancel()
            self.catch_up()  # before the clear: what it feeds needs no second cycle
            self.update_urgency()
            self._wake.clear()
            self.progress += 1
            now_boot_ns = self.clock.boottime_ns()
            ready = self._release(now_boot_ns)
            if ready:
                self._ready.extend(ready)
            await self._write()
            self.plan_cycle(now_boot_ns, ready)

    def plan_cycle(self, now_boot_ns: int, released: list[Reading]) -> None:
        """The next cycle's length: as long as the freshness bound allows, from the
        age of the stalest meter's newest reading released this cycle."""
        if released:
            newest: dict[str, int] = {}
            for reading in released:
                newest[reading.meter] = reading.t_boot_ns
            lag_s = (now_boot_ns - min(newest.values())) / 1e9
            batch_s = min(self.max_batch_s, max(self.min_batch_s, self.freshness_s - lag_s))
        elif self.readings_in != self._readings_at_cycle:
            batch_s = self.min_batch_s  # readings held back (hold-back, clock sync gate)
        else:
            batch_s = self.max_batch_s  # no readings at all: nothing to be fresh about
        self._readings_at_cycle = self.readings_in
        self.batch_s = batch_s
        self.next_cycle_boot_ns = now_boot_ns + int(batch_s * 1e9)

    async def _write(self) -> None:
        if not self._ready:
            return
        batch, self._ready = self._ready, []
        lines = []
        for reading in batch:
            try:
                lines.append(reading.to_line())
            except ValueError as exc:  # a non-finite value: counted, never written
                log.error("reading_unwritable", meter=reading.meter, error=str(exc))
        try:
            await self.journal.append(lines)
        except OSError:
            # Disk trouble: keep the readings and try again next cycle.
            self._ready[:0] = batch
            await asyncio.sleep(1.0)
            return
        self.readings_written += len(lines)

    async def drain(self) -> None:
        """Shutdown: release everything the stages hold and write it. A later stage
        holds older readings than an earlier one, so its readings go first."""
        self.catch_up()
        ready = list(self._released)
        self._released.clear()
        for stage in reversed(self.stages):
            ready.extend(stage.flush_all())
        self._ready.extend(ready)
        await self._write()

    def status(self) -> dict[str, object]:
        return {"readings_in": self.readings_in, "readings_written": self.readings_written,
                "pending": len(self._ready)}
