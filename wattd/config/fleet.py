"""Configuration of the fleet features (SPEC 10): ``markers.multicast`` and the
top-level ``prometheus`` section. Typed dataclasses, built and checked by
:mod:`wattd.config.loader` like every other section; kept here so the fleet keys live
in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PROMETHEUS_LISTEN = "127.0.0.1:9289"
DEFAULT_MULTICAST_GROUP = "239.192.92.88:9288"


@dataclass(slots=True)
class MulticastConfig:
    """Join ``group`` (``ADDR:PORT``) on the interface with address ``interface``
    (default: any). Counts as non-loopback: markers need a secret or an allow list."""

    group: str = DEFAULT_MULTICAST_GROUP
    interface: str | None = None


@dataclass(slots=True)
class PrometheusConfig:
    """``/metrics`` in the Prometheus text format on ``listen``; a non-loopback
    address needs ``allow`` (CIDR list), and other peers get 403."""

    listen: str = DEFAULT_PROMETHEUS_LISTEN
    allow: list[str] = field(default_factory=list)
