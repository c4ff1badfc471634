"""The database deliveries as one daemon component: one delivery per configured
`influxdb` entry, in the daemon (`delivery: thread`, the default) or in a process
of its own (`delivery: process`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING

from wattd.config import InfluxConfig, LogConfig

if TYPE_CHECKING:
    from wattd.journal.writer import Journal
    from wattd.sinks.inprocess import InProcessDelivery
    from wattd.sinks.process import DeliveryProcess

STOP_TIMEOUT_S = 5.0


class Sinks:
    """One delivery per configured sink, reading the journal: in the daemon
    (`wattd.sinks.inprocess`) or in its own process (`wattd.sinks.process`). They
    are woken by every journal append and, on stop, deliver what they can within
    `stop_timeout_s` (all sinks together: they stop in parallel)."""

    def __init__(self, cfgs: Sequence[InfluxConfig], journal: Journal, log_cfg: LogConfig, *,
                 spawn: Callable[[str, Coroutine[object, object, None]], asyncio.Task[None]],
                 stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.journal = journal
        self.deliveries: list[DeliveryProcess | InProcessDelivery] = []
        for cfg in cfgs:  # imported only when a sink is configured
            if cfg.delivery == "process":
                from wattd.sinks.process import DeliveryProcess

                self.deliveries.append(DeliveryProcess(cfg, journal.dir, log_cfg))
            else:
                from wattd.sinks.inprocess import InProcessDelivery

                self.deliveries.append(InProcessDelivery(cfg, journal))
        self.stop_timeout_s = stop_timeout_s
        self._spawn = spawn
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for delivery in self.deliveries:
            self.journal.append_listeners.append(delivery.wake)
            self._tasks.append(self._spawn(f"sink-{delivery.name}", delivery.run()))

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop(self.stop_timeout_s) for d in self.deliveries),
                             return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def points_behind(self, lines_written: int) -> int:
        """How far the slowest running delivery is behind the journal (0 when none runs:
        a sink that is down does not count, the journal absorbs that)."""
        return max((lines_written - d.delivered_points - d.dropped_points
                    for d in self.deliveries if d.state == "running"), default=0)

    def status(self) -> dict[str, object]:
        return {d.name: d.status() for d in self.deliveries}
