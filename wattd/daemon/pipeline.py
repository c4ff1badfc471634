"""The reading pipeline: sources -> stages -> journal.

Sources call :meth:`Pipeline.on_reading` from the event loop. The stages are
an ordered list given by the daemon (clock stamp, run tagging with hold-back,
clock sync gate). Readings that come out of the last stage are written to the
journal in batches, one per cycle: a plain event-loop callback that appends
without awaiting (``Journal.append_now``); a writer task takes the appends
that must await (a rotation, a big batch, the journal busy). Sources may keep
whole frames undecoded until the next cycle (wattd.sources.frame_backlog:
``urgent_now``, ``register_backlog``, ``catch_up``).
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

# Readings are written in batches: each cycle wakes the interpreter with cold caches
# (a few hundred microseconds however few readings it writes), so at the chip's
# real rate the number of cycles sets most of the daemon's CPU share. The batch
# adapts each cycle so that the newest journalled reading of every meter stays
# younger than this share of journal.fsync_interval_s (SPEC 4: a crash loses at
# most that interval; the rest is margin for the reading that triggers a cycle
# and for scheduling) ...
FRESHNESS_SHARE = 0.85
# ... within these bounds: never shorter than WRITE_BATCH_S (or a quarter of a
# short fsync interval), never longer than MAX_BATCH_SHARE of the fsync interval.
WRITE_BATCH_S = 0.2
MAX_BATCH_SHARE = 0.6
# A cycle is started by the first reading after it is due (the loop is awake
# then anyway: no timer wake-up); this timer, the batch plus this slack, starts it
# when no reading comes (a quiet meter's held-back readings are still released).
QUIET_SLACK_S = 0.15
# After an append failed (disk trouble) the readings are kept for a cycle this late.
DISK_RETRY_S = 1.0
# At shutdown, an append the writer task awaits gets this long to finish.
STOP_APPEND_WAIT_S = 10.0


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
        self._loop: asyncio.AbstractEventLoop | None = None  # while run() runs
        self._timer: asyncio.TimerHandle | None = None  # the next cycle
        self._cycle_soon = False  # a cycle runs, or a reading has asked for one (call_soon)
        self._slow = asyncio.Event()  # for the writer task: an awaited append, a failure
        self._writing = False  # the writer task awaits an append: no cycle meanwhile
        self._stopping = False  # stop() was called: no cycle, the writer ends after its append
        # the cycle that handed its append to the writer task: its plan inputs and lines
        self._unplanned: tuple[int, list[Reading], list[str]] = (0, [], [])
        self._failure: Exception | None = None
        self._retry_s = 0.0  # the next cycle no sooner than this (after disk trouble)
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
        if (not self._cycle_soon and self._loop is not None
                and self.clock.boottime_ns() >= self.next_cycle_boot_ns):
            self._cycle_soon = True  # the loop is awake: this reading's callback ends first
            self._loop.call_soon(self._cycle)

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
        self._stopping = False
        run = self.run()
        self.writer = (self._spawn("pipeline", run) if self._spawn is not None
                       else asyncio.ensure_future(run))

    async def stop(self) -> None:
        """Stop the cycles and the writer, then write everything the stages still hold.
        An append the writer awaits is let finish (its readings have left the stages);
        only one that takes longer than STOP_APPEND_WAIT_S is cancelled."""
        writer = self.writer
        if writer is not None:
            self._stopping = True
            if self._writing:
                await asyncio.wait({writer}, timeout=STOP_APPEND_WAIT_S)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        await self.drain()

    async def run(self) -> None:
        """Drive the cycles; a cycle is a plain loop callback (``_cycle``).

        A reading enters the stages at once (the marker engine sees it in
        ``on_reading``); a cycle releases what is ready and appends it to the
        journal without awaiting (``Journal.append_now``), once per ``batch_s``:
        started by the first reading after it is due, or by a timer when no
        reading comes. This task waits for what a cycle cannot do at once (an
        append that must await: a rotation, a big batch, the journal busy) and
        ends with the first failure of a cycle (the daemon then stops)."""
        self._loop = asyncio.get_running_loop()
        self._arm_timer()
        try:
            while True:
                await self._slow.wait()
                self._slow.clear()
                if self._failure is not None:
                    raise self._failure
                now_boot_ns, released, lines = self._unplanned
                await self._write(lines)
                self._writing = False
                if self._stopping:
                    return
                self._plan_and_arm(now_boot_ns, released)
        finally:
            self._cancel_timer()
            self._loop = None

    def _cycle(self) -> None:
        """One cycle (timer or reading): feed kept frames, release, append, plan."""
        self._cancel_timer()  # a reading's cycle comes before the timer's
        if self._writing or self._loop is None or self._stopping:
            self._cycle_soon = False
            return  # the writer task awaits an append (it plans the next cycle), or stopped
        self._cycle_soon = True  # the readings catch_up feeds start no second cycle
        try:
            self.catch_up()
            self.update_urgency()
            self.progress += 1
            now_boot_ns = self.clock.boottime_ns()
            ready = self._release(now_boot_ns)
            if ready:
                self._ready.extend(ready)
            lines = self._lines(self._ready)
            if not lines:
                self._ready = []  # nothing, or nothing writable (each one logged)
            elif not self._write_now(lines):
                self._writing = True
                self._unplanned = (now_boot_ns, ready, lines)
                self._slow.set()
                return
            self._plan_and_arm(now_boot_ns, ready)
        except Exception as exc:  # noqa: BLE001 - ends the writer task, as a failed cycle did
            self._failure = exc
            self._slow.set()

    def _plan_and_arm(self, now_boot_ns: int, released: list[Reading]) -> None:
        self.plan_cycle(now_boot_ns, released)
        self._arm_timer(self._retry_s)
        self._retry_s = 0.0
        self._cycle_soon = False

    def _arm_timer(self, delay_s: float = 0.0) -> None:
        """The next cycle's timer: the batch, plus slack when readings start cycles
        (sources that keep their frames start none: the timer is the cycle then)."""
        self._cancel_timer()
        if self._loop is not None:
            slack = 0.0 if self._backlogs else QUIET_SLACK_S
            self._timer = self._loop.call_later(max(delay_s, self.batch_s + slack),
                                                self._cycle)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

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

    def _lines(self, batch: list[Reading]) -> list[str]:
        lines = []
        for reading in batch:
            try:
                lines.append(reading.to_line())
            except ValueError as exc:  # a non-finite value: counted, never written
                log.error("reading_unwritable", meter=reading.meter, error=str(exc))
        return lines

    def _write_now(self, lines: list[str]) -> bool:
        """Append the ready readings' ``lines`` without awaiting; False when the journal
        must be awaited (``_write``). Disk trouble keeps them for a cycle a second later."""
        try:
            if not self.journal.append_now(lines):
                return False
        except OSError:
            self._retry_s = DISK_RETRY_S
            return True
        self._ready = []
        self.readings_written += len(lines)
        return True

    async def _write(self, lines: list[str] | None = None) -> None:
        """Append the ready readings (their ``lines`` when a cycle made them already)."""
        if not self._ready:
            return
        batch, self._ready = self._ready, []
        if lines is None:
            lines = self._lines(batch)
        try:
            await self.journal.append(lines)
        except OSError:
            # Disk trouble: keep the readings and try again a second later.
            self._ready[:0] = batch
            self._retry_s = DISK_RETRY_S
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
