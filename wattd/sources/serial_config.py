"""A configured serial meter's source: its driver's decoder, line settings and tags."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.protocols.base import DecodeError
from wattd.protocols.plausible import RangesLike
from wattd.protocols.registry import get_driver
from wattd.readings import Reading
from wattd.sources.frame_backlog import Deferral
from wattd.sources.serial_source import SerialSource


class MeterLike(Protocol):
    """The fields of ``wattd.config.MeterConfig`` a serial source uses."""

    name: str
    tags: dict[str, str]
    baudrate: int | None
    calibration: dict[str, float]
    latency_ms: float
    address: int
    poll_interval_s: float

    @property
    def plausible(self) -> RangesLike: ...


def make_serial_source(meter: MeterLike, *, port: str, driver: str,
                       on_reading: Callable[[Reading], None],
                       on_error: Callable[[DecodeError], None] | None = None,
                       clock: Clock = SYSTEM_CLOCK,
                       deferral: Deferral | None = None) -> SerialSource:
    """A source for one configured serial meter (``driver`` may differ from the config's,
    e.g. ``gb202`` for a ``simulated`` meter). Raises ConfigError for a bad driver or
    calibration key."""
    spec = get_driver(driver)
    settings = spec.serial
    if meter.baudrate and meter.baudrate != settings.baudrate:
        settings = dataclasses.replace(settings, baudrate=meter.baudrate)
    decoder = spec.make_decoder(meter.calibration or None, meter.plausible, settings=settings,
                                address=meter.address)
    return SerialSource(
        meter.name, port, spec, decoder, on_reading=on_reading, on_error=on_error,
        settings=settings, latency_ms=meter.latency_ms, clock=clock,
        static_tags=meter.tags, poll_interval_s=meter.poll_interval_s if spec.polled else None,
        deferral=deferral)
