"""Clock health: is the kernel clock synchronised, and did realtime step?

Verdict (``assess``), from the kernel's adjtimex state:

- An error estimate exists (chrony, ntpd: ``0 < esterror < 16 s``): synced
  when ``maxerror <= max_error_ms``. The maximum error is the kernel's bound,
  grown by 500 us/s since the NTP daemon's last update, so it is the truth
  even when the unsync flag disagrees.
- Caveat, chrony without ``rtcsync``: chrony on Linux clears ``STA_UNSYNC``
  only when ``rtcsync`` is in chrony.conf (Debian's default chrony.conf has
  it). Without it the flag stays set although chrony keeps maxerror/esterror
  current. wattd recognises that state (flag set, live estimate) and trusts
  the error bound; the status says ``basis: error_bound`` and a one-time
  warning suggests adding ``rtcsync``.
- Caveat, systemd-timesyncd: it writes ``maxerror = esterror = 0`` on every
  update and clears the flag; maxerror then only measures the time since the
  last update (500 us/s, up to ~1 s at a 2048 s poll), not an error. So
  ``esterror == 0`` with the flag clear is "synced, error unknown":
  ``max_error_ms`` cannot be applied and the status says so.
- Otherwise (flag set, no estimate; or adjtimex failed): not synced.

Step detection: ``realtime - boottime`` changes only when the realtime clock
is stepped (settimeofday, ADJ_SETOFFSET, a leap second): NTP slewing changes
the rate of both clocks alike, and suspend advances both. A change beyond
``step_threshold_ms`` plus 500 ppm of the elapsed time (a safety margin for
clock reading jitter and virtual machines) between two polls is a step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wattd.clock.adjtimex import KERNEL_SLEW_PPM, ClockStateReader, KernelClockState
from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.clock.verdict import CAVEATS, DEFAULT_MAX_ERROR_MS, Assessment, assess
from wattd.lineprotocol import format_line
from wattd.logsetup import get_logger

__all__ = ["CAVEATS", "Assessment", "ClockHealth", "ClockStep", "StepDetector", "assess",
           "step_marker_line"]

DEFAULT_STEP_THRESHOLD_MS = 50.0
DEFAULT_POLL_INTERVAL_S = 5.0
STEP_HISTORY = 1024  # steps remembered for stepped_between (runs are bounded by max_run_s)

@dataclass(slots=True, frozen=True)
class ClockStep:
    """The realtime clock jumped by ``step_ns`` against boot time between two polls."""

    step_ns: int
    boot_before_ns: int  # boot time of the poll before the step
    boot_after_ns: int  # boot time of the poll that saw it
    realtime_ns: int  # realtime at the detecting poll (after the step)

    @property
    def step_ms(self) -> float:
        return self.step_ns / 1e6


def step_marker_line(step: ClockStep) -> str:
    """The ``wattd_marker`` event point that makes a step visible in Grafana (SPEC 3)."""
    return format_line("wattd_marker", {"run": "clock_step", "verb": "event"},
                       {"text": f"step_ms={step.step_ms:+.3f}"}, step.realtime_ns)


def sample_offset(clock: Clock, tries: int = 3) -> tuple[int, int, int]:
    """(realtime - boottime, boottime, realtime), from the tightest of a few bracketed reads."""
    best: tuple[int, int, int, int] | None = None
    for _ in range(tries):
        b0 = clock.boottime_ns()
        rt = clock.realtime_ns()
        b1 = clock.boottime_ns()
        width = b1 - b0
        if best is None or width < best[0]:
            mid = b0 + width // 2
            best = (width, rt - mid, mid, rt)
    assert best is not None
    return best[1], best[2], best[3]


class StepDetector:
    """Compares ``realtime - boottime`` between polls; remembers bounded step history."""

    def __init__(self, threshold_ms: float = DEFAULT_STEP_THRESHOLD_MS,
                 history: int = STEP_HISTORY) -> None:
        self.threshold_ns = int(threshold_ms * 1e6)
        self.steps: deque[ClockStep] = deque(maxlen=history)
        self.count = 0
        self._last: tuple[int, int] | None = None  # (offset_ns, boot_ns)

    def observe(self, offset_ns: int, boot_ns: int, realtime_ns: int) -> ClockStep | None:
        last = self._last
        self._last = (offset_ns, boot_ns)
        if last is None:
            return None
        delta = offset_ns - last[0]
        elapsed = max(0, boot_ns - last[1])
        limit = self.threshold_ns + elapsed * KERNEL_SLEW_PPM // 1_000_000
        if abs(delta) <= limit:
            return None
        step = ClockStep(delta, last[1], boot_ns, realtime_ns)
        self.steps.append(step)
        self.count += 1
        return step

    @property
    def has_sample(self) -> bool:
        return self._last is not None

    def stepped_between(self, boot_a_ns: int, boot_b_ns: int) -> bool:
        """Did a step possibly happen in [a, b] (boot time)? Conservative: a step is known
        only to lie between the two polls around it, so any overlap counts."""
        lo, hi = min(boot_a_ns, boot_b_ns), max(boot_a_ns, boot_b_ns)
        return any(s.boot_before_ns <= hi and s.boot_after_ns >= lo for s in self.steps)


class ClockHealth:
    """Polls the kernel clock state and the realtime/boottime offset.

    ``synced`` is the latest verdict (read it for every reading's
    ``clock_synced``); transitions are logged once each; steps go to
    ``on_step`` (the daemon journals ``step_marker_line(step)``).
    """

    def __init__(self, reader: ClockStateReader, clock: Clock = SYSTEM_CLOCK, *,
                 max_error_ms: float = DEFAULT_MAX_ERROR_MS,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
                 step_threshold_ms: float = DEFAULT_STEP_THRESHOLD_MS,
                 on_step: Callable[[ClockStep], None] | None = None,
                 logger: Any = None) -> None:
        self.reader = reader
        self.clock = clock
        self.max_error_ms = max_error_ms
        self.poll_interval_s = poll_interval_s
        self.on_step = on_step
        self.steps = StepDetector(step_threshold_ms)
        self.log = logger if logger is not None else get_logger("wattd.clock")
        self.state: KernelClockState | None = None
        self.assessment: Assessment | None = None
        self.polls = 0
        self.read_errors = 0
        self.transitions = 0
        self._warned_rtcsync = False
        self._task: asyncio.Task[None] | None = None
        # Called before each poll renews the verdict (the daemon: readings taken under
        # the old verdict are stamped with it first).
        self.before_poll: Callable[[], None] | None = None

    @property
    def synced(self) -> bool:
        return self.assessment is not None and self.assessment.synced

    def poll(self) -> Assessment:
        """One sample: kernel state, verdict, step check. Never raises."""
        if self.before_poll is not None:
            self.before_poll()
        self.polls += 1
        error_text = ""
        try:
            state: KernelClockState | None = self.reader.read()
        except OSError as exc:
            state = None
            error_text = str(exc)
            self.read_errors += 1
        verdict = assess(state, self.max_error_ms, error_text)
        previous = self.assessment
        self.state, self.assessment = state, verdict
        if previous is None or previous.synced != verdict.synced:
            if previous is not None:
                self.transitions += 1
            log = self.log.info if verdict.synced else self.log.warning
            log("clock_synchronised" if verdict.synced else "clock_unsynchronised",
                basis=verdict.basis, reason=verdict.reason, maxerror_ms=verdict.maxerror_ms)
        if verdict.basis == "error_bound" and not self._warned_rtcsync:
            self._warned_rtcsync = True
            self.log.warning("clock_flag_unsync_with_live_error_bound",
                             hint="chrony without 'rtcsync'? add it to chrony.conf so the "
                                  "kernel's flag tells the truth; wattd uses the error bound")
        self.check_step()
        return verdict

    def check_step(self) -> ClockStep | None:
        """Compare realtime - boottime with the previous sample now (cheap: clock reads only)."""
        offset, boot, real = sample_offset(self.clock)
        step = self.steps.observe(offset, boot, real)
        if step is not None:
            self.log.error("clock_step", step_ms=round(step.step_ms, 3),
                           hint="the realtime clock jumped; runs spanning it are flagged "
                                "clock_step")
            if self.on_step is not None:
                try:
                    self.on_step(step)
                except Exception as exc:  # a callback bug must not stop the monitor
                    self.log.exception("clock_step_callback_failed", error=repr(exc))
        return step

    def stepped_between(self, boot_a_ns: int, boot_b_ns: int) -> bool:
        """Did realtime (possibly) step within [a, b] (boot time)? Samples the offset first,
        so a step since the last poll is seen even by a run that stops right after it."""
        if self.steps.has_sample:
            self.check_step()
        return self.steps.stepped_between(boot_a_ns, boot_b_ns)

    def status(self) -> dict[str, object]:
        verdict = self.assessment
        out: dict[str, object] = {
            "synced": self.synced,
            "basis": verdict.basis if verdict else "not_polled",
            "reason": verdict.reason if verdict else "not polled yet",
            "error_known": verdict.error_known if verdict else False,
            "max_error_ms": self.max_error_ms,
            "steps": self.steps.count,
            "read_errors": self.read_errors,
        }
        if self.state is not None:
            out["kernel"] = self.state.as_dict()
        if self.steps.steps:
            out["last_step_ms"] = round(self.steps.steps[-1].step_ms, 3)
        return out

    # -- asyncio lifecycle -------------------------------------------------

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self.poll_interval_s)

    def start(self) -> asyncio.Task[None]:
        """Poll once now (so ``synced`` is meaningful at once), then every interval."""
        if self._task is None:
            self.poll()
            self._task = asyncio.create_task(self._run_after_sleep(), name="clock-health")
        return self._task

    async def _run_after_sleep(self) -> None:
        await asyncio.sleep(self.poll_interval_s)
        await self.run()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
