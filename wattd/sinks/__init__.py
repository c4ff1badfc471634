"""Database sinks (InfluxDB v1 /write, v2 /api/v2/write) and their delivery loops.

Nothing heavy is imported here: a sink's module (and http.client with it) is
imported only when such a sink is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wattd.config import InfluxConfig
    from wattd.journal.writer import Journal
    from wattd.sinks.base import Sink
    from wattd.sinks.delivery import Delivery


def make_sink(cfg: InfluxConfig) -> Sink:
    """The sink for one `influxdb` config entry."""
    if cfg.api == "v1":
        from wattd.sinks.v1 import InfluxV1Sink  # lazy by design

        return InfluxV1Sink(cfg)
    from wattd.sinks.v2 import InfluxV2Sink

    return InfluxV2Sink(cfg)


def make_delivery(cfg: InfluxConfig, journal: Journal, **kwargs: object) -> Delivery:
    """A delivery loop for one `influxdb` entry, reading `journal` with the cursor
    `cfg.sink_name`. Start it with `.start()`, stop it with `await .stop(5.0)`."""
    from wattd.sinks.delivery import Delivery

    return Delivery(make_sink(cfg), journal.dir, cursors=journal.cursors, name=cfg.sink_name,
                    data_event=journal.data_event, batch_size=cfg.batch_size,
                    flush_interval_s=cfg.flush_interval_s, **kwargs)  # type: ignore[arg-type]
