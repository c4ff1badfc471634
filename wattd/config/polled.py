"""Config of the SPEC 8 meters (mcp39f511n, um, hwmon, shelly, tasmota): their
keys' checks and per-driver defaults, applied by ``wattd.config`` on load.

``poll_interval_s`` and ``plausible`` get the driver's default when the file
does not give them (SPEC 8: DC meters 0-30 V, 0-10 A; mains meters keep
80-300 V). The driver table itself is ``wattd.protocols.registry.POLLED_METERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from wattd.errors import ConfigError

if TYPE_CHECKING:
    from wattd.config import MeterConfig

POLLED_DRIVERS = ("mcp39f511n", "um", "hwmon", "shelly", "tasmota")


class Located(Protocol):
    """The config builder: where each key was, and errors naming file, line and key."""

    lines: dict[tuple[str | int, ...], int]

    def error(self, path: tuple[str | int, ...], message: str) -> ConfigError: ...


_POLLED_ONLY_KEYS = ("channel", "path", "sensor", "url", "timeout_s", "username",
                     "password_file")
# The same values as the registry's POLLED_METERS (a test keeps them equal): the
# config does not import the protocol modules.
_POLL_DEFAULTS_S = {"mcp39f511n": 0.1, "um": 0.5, "hwmon": 0.1, "shelly": 1.0, "tasmota": 1.0}
_DC_DRIVERS = ("um", "hwmon")
_DC_RANGES = {"voltage_v": (0.0, 30.0), "current_a": (0.0, 10.0), "power_w": (0.0, 300.0)}


def validate_polled(b: Located, path: tuple[str | int, ...], meter: MeterConfig, *,
                    stop_wait_s: float = 5.0) -> None:
    driver = meter.driver
    if driver not in POLLED_DRIVERS:
        for key in _POLLED_ONLY_KEYS:
            if getattr(meter, key) is not None:
                raise b.error((*path, key), f"only for drivers {', '.join(POLLED_DRIVERS)}")
        return
    if (*path, "poll_interval_s") not in b.lines:
        meter.poll_interval_s = _POLL_DEFAULTS_S[driver]
    if driver in _DC_DRIVERS:
        for key, default in _DC_RANGES.items():
            if (*path, "plausible", key) not in b.lines:
                setattr(meter.plausible, key, default)
    if meter.poll_interval_s <= 0:
        raise b.error((*path, "poll_interval_s"), "must be > 0")
    if meter.poll_interval_s >= stop_wait_s:
        raise b.error((*path, "poll_interval_s"),
                      f"must be below markers.stop_wait_s ({stop_wait_s:g} s): a stop "
                      "reply waits for the poll after the stop (raise stop_wait_s)")
    if meter.timeout_s is not None and meter.timeout_s <= 0:
        raise b.error((*path, "timeout_s"), "must be > 0")
    if driver in ("mcp39f511n", "um") and not meter.port:
        example = "/dev/ttyACM0" if driver == "mcp39f511n" else "/dev/rfcomm0"
        raise b.error((*path, "port"), f"driver {driver} needs a serial 'port' (e.g. {example})")
    if driver == "mcp39f511n" and meter.channel not in (None, 1, 2):
        raise b.error((*path, "channel"), "the MCP39F511N has channels 1 and 2")
    if driver == "hwmon" and (meter.path is None) == (meter.sensor is None):
        raise b.error(path, "driver hwmon needs exactly one of 'path' "
                      "(/sys/class/hwmon/hwmonN) and 'sensor' (e.g. ina226)")
    if driver in ("shelly", "tasmota"):
        if not meter.url or not meter.url.startswith(("http://", "https://")):
            raise b.error((*path, "url"), f"driver {driver} needs a 'url' "
                          "starting with http:// or https://")
        if meter.channel is not None and meter.channel < 0:
            raise b.error((*path, "channel"), "must be >= 0")
        if meter.username is not None and meter.password_file is None:
            raise b.error((*path, "password_file"), "a username needs its password_file")
        if meter.password_file is not None:
            try:
                meter.password()
            except ConfigError as exc:
                raise b.error((*path, "password_file"), exc.message) from None
    else:
        for key in ("url", "username", "password_file"):
            if getattr(meter, key) is not None:
                raise b.error((*path, key), "only for drivers shelly and tasmota")
    if driver != "hwmon":
        for key in ("path", "sensor"):
            if getattr(meter, key) is not None:
                raise b.error((*path, key), "only for driver hwmon")
