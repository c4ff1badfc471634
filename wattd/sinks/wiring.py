"""Plugs one delivery per configured `influxdb` entry into the daemon: in the
daemon (`delivery: thread`, the default) or in a process of its own
(`delivery: process`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wattd.daemon.app import Daemon
    from wattd.sinks.inprocess import InProcessDelivery
    from wattd.sinks.process import DeliveryProcess

STOP_TIMEOUT_S = 5.0


def install_sinks(daemon: Daemon, *,
                  stop_timeout_s: float = STOP_TIMEOUT_S
                  ) -> list[DeliveryProcess | InProcessDelivery]:
    """Create the deliveries for `daemon.cfg.influxdb`, each in the daemon
    (`wattd.sinks.inprocess`) or in its own process (`wattd.sinks.process`). They
    start after the journal opened, are woken by every journal append, and stop
    (delivering what they can within `stop_timeout_s`) after the pipeline was
    drained into the journal, before it closes. Their status appears under "sinks"
    in `wattd status`."""
    if not daemon.cfg.influxdb:
        return []
    deliveries: list[DeliveryProcess | InProcessDelivery] = []
    for cfg in daemon.cfg.influxdb:  # imported only when a sink is configured
        if cfg.delivery == "process":
            from wattd.sinks.process import DeliveryProcess

            deliveries.append(DeliveryProcess(cfg, daemon.journal.dir, daemon.cfg.log))
        else:
            from wattd.sinks.inprocess import InProcessDelivery

            deliveries.append(InProcessDelivery(cfg, daemon.journal))

    async def start() -> None:
        for delivery in deliveries:
            daemon.journal.append_listeners.append(delivery.wake)
            daemon.start_task(f"sink-{delivery.name}", delivery.run())

    async def stop() -> None:
        # The bound is for all sinks together: they stop in parallel.
        await asyncio.gather(*(d.stop(stop_timeout_s) for d in deliveries),
                             return_exceptions=True)
        tasks = [t for d in deliveries if (t := daemon.tasks.pop(f"sink-{d.name}", None))]
        await asyncio.gather(*tasks, return_exceptions=True)

    daemon.startup_hooks.append(start)
    daemon.delivery_shutdown_hooks.append(stop)
    daemon.add_status("sinks", lambda: {d.name: d.status() for d in deliveries})
    return deliveries
