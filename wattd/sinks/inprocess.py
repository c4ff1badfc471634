"""One sink's delivery inside the daemon: the delivery loop on the event loop, HTTP in a thread.

The default for an ``influxdb`` entry (``delivery: thread``). At a real daemon's
rates (a few meters at ~10 readings/s each) delivery costs a batch a second, so
a process of its own only added an interpreter's memory (20-35 MB PSS per sink).
The loop's blocking work already runs in worker threads (journal reads in the
default executor, the POST in the sink's own thread), so the event loop that
stamps readings never waits on the network. ``delivery: process`` keeps the
separate process (``wattd.sinks.process``) for high ingest rates, where HTTP,
gzip and TLS would otherwise share the daemon's interpreter lock.

Same guarantees as the process: the same ``Delivery`` loop (cursor advanced only
after the database acknowledged, bounded drain at stop), the same exclusive
lock on the sink's cursor, the same interface for ``wattd.sinks.wiring``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from wattd.sinks import make_sink
from wattd.sinks.child import take_cursor_lock
from wattd.sinks.delivery import Delivery

if TYPE_CHECKING:
    from wattd.config import InfluxConfig
    from wattd.journal.writer import Journal


class InProcessDelivery:
    """``run()`` until ``stop()``; woken by ``wake()`` after each journal append."""

    def __init__(self, cfg: InfluxConfig, journal: Journal) -> None:
        self.cfg = cfg
        self.name = cfg.sink_name
        self.url = cfg.url
        self._event = asyncio.Event()
        self.delivery = Delivery(make_sink(cfg), journal.dir, cursors=journal.cursors,
                                 name=self.name, data_event=self._event,
                                 batch_size=cfg.batch_size,
                                 flush_interval_s=cfg.flush_interval_s)
        self._lock_fd: int | None = None

    @property
    def state(self) -> str:
        return self.delivery.state

    @property
    def delivered_points(self) -> int:
        return self.delivery.delivered_points

    @property
    def dropped_points(self) -> int:
        return self.delivery.dropped_points

    def wake(self) -> None:
        self._event.set()

    async def run(self) -> None:
        self.delivery.attach(asyncio.current_task())
        self._lock_fd = await take_cursor_lock(self.delivery.cursors.dir, self.name)
        try:
            await self.delivery.run()
        finally:
            fd, self._lock_fd = self._lock_fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, then stop."""
        await self.delivery.stop(timeout_s)

    def status(self) -> dict[str, Any]:
        return {**self.delivery.status(), "delivery": "thread"}
