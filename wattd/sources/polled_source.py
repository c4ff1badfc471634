"""A polled meter in the event loop: ask, stamp, pass on, on a steady cadence (SPEC 8).

The source owns the cadence, the reconnect logic (the shared ``Reconnector``:
capped backoff, each state change logged once), the counters ``wattd status``
shows and the one-log-line-per-state-change rule for input errors. A
transport (serial port, sysfs files, HTTP plug) only opens, polls and closes:
``poll()`` returns the events of one poll, each measurement already stamped
(request/reply midpoint) on both clocks, and raises ``MeterPortError`` when
the port is gone. Nothing raises out of ``run()`` except cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.errors import WattdError
from wattd.protocols.base import DecodeCounters, DecodeError, Measurement
from wattd.readings import Reading
from wattd.sources.reconnect import Reconnector


class MeterPortError(WattdError):
    """The meter cannot be reached (port gone, file vanished, plug not answering)."""


@dataclass(slots=True, frozen=True)
class Stamped:
    """One event of a poll; a measurement with its stamp on both clocks."""

    event: Measurement | DecodeError
    t_ns: int = 0  # CLOCK_REALTIME
    t_boot_ns: int = 0  # CLOCK_BOOTTIME, the same instant


class PollTransport(Protocol):
    @property
    def port(self) -> str:
        """What `wattd status` shows: a device, a directory, a URL."""
        ...

    @property
    def counters(self) -> DecodeCounters: ...

    async def open(self) -> None: ...

    async def poll(self) -> list[Stamped]: ...

    async def close(self) -> None: ...

    def details(self) -> dict[str, object]: ...


class PolledSource:
    """One polled meter. ``await run()`` until ``stop()``; ``status()`` for ``wattd status``."""

    def __init__(self, name: str, driver: str, transport: PollTransport, *,
                 poll_interval_s: float, on_reading: Callable[[Reading], None],
                 on_error: Callable[[DecodeError], None] | None = None,
                 clock: Clock = SYSTEM_CLOCK, static_tags: Mapping[str, str] | None = None,
                 clock_synced: Callable[[], bool] | None = None,
                 reconnector: Reconnector | None = None, log: Any = None) -> None:
        self.name = name
        self.driver = driver
        self.transport = transport
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.static_tags = dict(static_tags or {})
        self._on_reading = on_reading
        self._on_error = on_error
        self._clock_synced = clock_synced or (lambda: True)
        self._log = log or structlog.get_logger("wattd.sources")
        self.reconnector = reconnector or Reconnector(name, log=self._log)
        self.polls = 0
        self.readings = 0
        self.handler_errors = 0
        self.input_state = "ok"  # "ok" or the reason of the last input error
        self._last_reading_boot_ns: int | None = None
        self._connected = False
        self._stop = asyncio.Event()

    async def run(self) -> None:
        rc = self.reconnector
        while not rc.stopped:
            try:
                await self.transport.open()
            except (MeterPortError, OSError) as exc:
                rc.failed(str(exc))
                await self._safe_close()
                if not await rc.wait():
                    break
                continue
            # Connected once a poll went through: a plug that opens (a TCP connect is
            # lazy) but never answers stays "retrying", logged once, not connected/lost
            # once per backoff round.
            self._connected = False
            reason = await self._poll_loop()
            await self._safe_close()
            if rc.stopped or reason is None:
                break
            if self._connected:
                rc.lost(reason)
            else:
                rc.failed(reason)
            if not await rc.wait():
                break

    def stop(self) -> None:
        self.reconnector.stop()
        self._stop.set()

    async def _safe_close(self) -> None:
        try:
            await self.transport.close()
        except (OSError, MeterPortError) as exc:
            self._log.debug("closing meter port failed", meter=self.name, reason=str(exc))

    async def _poll_loop(self) -> str | None:
        """Poll until the port is lost (its reason) or the source stops (None)."""
        loop = asyncio.get_running_loop()
        interval = self.poll_interval_s
        next_t = loop.time()
        while not self._stop.is_set():
            try:
                results = await self.transport.poll()
            except (MeterPortError, OSError) as exc:
                return str(exc) or type(exc).__name__
            self.polls += 1
            if not self._connected:
                self._connected = True
                self.reconnector.connected()
            for item in results:
                try:
                    if isinstance(item.event, Measurement):
                        self._emit(item)
                    else:
                        self._error(item.event)
                except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the port
                    self.handler_errors += 1
                    self._log.error("reading handler failed", meter=self.name, error=repr(exc))
            next_t += interval
            now = loop.time()
            next_t = max(next_t, now)  # fell behind (slow answer, suspend): skip, no burst
            try:
                await asyncio.wait_for(self._stop.wait(), next_t - now)
            except TimeoutError:
                continue
        return None

    def _emit(self, item: Stamped) -> None:
        m = item.event
        assert isinstance(m, Measurement)
        if self.input_state != "ok":
            self._log.info("meter input recovered", meter=self.name, after=self.input_state)
            self.input_state = "ok"
        reading = Reading(self.name, item.t_ns, item.t_boot_ns, m.power_w, m.voltage_v,
                          m.current_a, m.apparent_va, m.power_factor, m.energy_j, m.status,
                          self._clock_synced(), dict(self.static_tags))
        self.readings += 1
        self._last_reading_boot_ns = item.t_boot_ns
        self._on_reading(reading)

    def _error(self, error: DecodeError) -> None:
        if error.reason != self.input_state:  # one line per state change, not per poll
            self.input_state = error.reason
            self._log.warning("meter input dropped", meter=self.name, reason=error.reason,
                              detail=error.detail)
        if self._on_error is not None:
            self._on_error(error)

    def status(self) -> dict[str, object]:
        c = self.transport.counters
        age_s = None
        if self._last_reading_boot_ns is not None:
            age_s = round((self.clock.boottime_ns() - self._last_reading_boot_ns) / 1e9, 3)
        return {
            "meter": self.name, "driver": self.driver, "port": self.transport.port,
            "state": self.reconnector.state.value, "frames_ok": c.frames_ok,
            "frames_bad": sum(c.dropped.values()), "dropped": dict(sorted(c.dropped.items())),
            "skipped_bytes": c.skipped_bytes, "polls": self.polls, "readings": self.readings,
            "poll_interval_s": self.poll_interval_s, "reconnects": self.reconnector.reconnects,
            "input_state": self.input_state, **self.transport.details(),
            "last_error": self.reconnector.last_error or None,
            "last_reading_age_s": age_s,
        }
