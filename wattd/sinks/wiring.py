"""Plugs one delivery loop per configured `influxdb` entry into the daemon."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from wattd.sinks import make_delivery

if TYPE_CHECKING:
    from wattd.daemon.app import Daemon
    from wattd.sinks.delivery import Delivery

STOP_TIMEOUT_S = 5.0


def install_sinks(daemon: Daemon, *, stop_timeout_s: float = STOP_TIMEOUT_S) -> list[Delivery]:
    """Create the deliveries for `daemon.cfg.influxdb`; they start after the journal
    opened and stop (delivering what they can within `stop_timeout_s`) after the
    pipeline was drained into it, before it closes. Their status appears under
    "sinks" in `wattd status`."""
    deliveries = [make_delivery(cfg, daemon.journal) for cfg in daemon.cfg.influxdb]
    if not deliveries:
        return deliveries

    async def start() -> None:
        for delivery in deliveries:
            daemon.start_task(f"sink-{delivery.name}", delivery.run())

    async def stop() -> None:
        for delivery in deliveries:
            task = daemon.tasks.pop(f"sink-{delivery.name}", None)
            delivery.attach(task)
        # The bound is for all sinks together: they stop in parallel.
        await asyncio.gather(*(d.stop(stop_timeout_s) for d in deliveries),
                             return_exceptions=True)

    daemon.startup_hooks.append(start)
    daemon.delivery_shutdown_hooks.append(stop)
    daemon.add_status("sinks", lambda: {d.name: d.status() for d in deliveries})
    return deliveries
