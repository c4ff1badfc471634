"""Build the source (and, under ``--simulate``, the simulator) of a SPEC 8 meter.

One function per transport; the daemon's meter set calls ``make_polled_source``
for drivers ``mcp39f511n``, ``um``, ``hwmon``, ``shelly`` and ``tasmota``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from wattd.clock.timesource import SYSTEM_CLOCK, Clock
from wattd.errors import ConfigError
from wattd.protocols.base import DecodeError
from wattd.protocols.plausible import Plausible, RangesLike
from wattd.protocols.polled import DC_PLAUSIBLE, MAINS_PLAUSIBLE
from wattd.protocols.registry import POLLED_METERS, get_driver
from wattd.readings import Reading
from wattd.sources.polled_source import PolledSource, PollTransport

SIMULATED_POWER_W = {"mcp39f511n": 60.0, "um": 3.5, "hwmon": 3.5, "shelly": 40.0,
                     "tasmota": 40.0}


class PolledMeterLike(Protocol):
    """The fields of ``wattd.config.MeterConfig`` a polled source uses."""

    name: str
    driver: str
    tags: dict[str, str]
    port: str | None
    baudrate: int | None
    calibration: dict[str, float]
    latency_ms: float
    poll_interval_s: float
    channel: int | None
    path: str | None
    sensor: str | None
    url: str | None
    timeout_s: float | None
    username: str | None
    power_w: float | None
    profile: str | None

    @property
    def plausible(self) -> RangesLike: ...

    def password(self) -> str | None: ...


def make_polled_source(meter: PolledMeterLike, *, on_reading: Callable[[Reading], None],
                       clock: Clock = SYSTEM_CLOCK,
                       on_error: Callable[[DecodeError], None] | None = None,
                       clock_synced: Callable[[], bool] | None = None,
                       simulate_dir: str | os.PathLike[str] | None = None,
                       hwmon_root: str | os.PathLike[str] | None = None,
                       ) -> tuple[PolledSource, Any]:
    """(source, simulator or None). With ``simulate_dir`` the meter is simulated
    there (a pty, a directory of hwmon files, a loopback HTTP server)."""
    spec = POLLED_METERS[meter.driver]
    plausible = _plausible(meter, spec.dc)
    simulator: Any = None
    transport: PollTransport
    timeout_s = meter.timeout_s or spec.timeout_s
    if spec.transport == "serial":
        port = meter.port
        if simulate_dir is not None:
            simulator = _start_serial_sim(meter, Path(simulate_dir) / f"{meter.name}.tty")
            port = str(simulator.port_path)
        if not port:
            raise ConfigError(f"driver {meter.driver} needs a serial 'port'", key="port")
        transport = _serial_transport(meter, port, clock, timeout_s, plausible)
    elif spec.transport == "sysfs":
        from wattd.protocols.hwmon import HwmonDecoder
        from wattd.sources.sysfs_hwmon import HWMON_ROOT, HwmonTransport

        path, sensor = meter.path, meter.sensor
        root: str | os.PathLike[str] = hwmon_root or HWMON_ROOT
        if simulate_dir is not None:
            from wattd.simulator.hwmon_dir import HwmonSimulator

            root = Path(simulate_dir) / f"{meter.name}-hwmon"
            simulator = HwmonSimulator(Path(root) / "hwmon0", _power(meter),
                                       sensor=sensor or "ina226").start()
            path = None if sensor else str(Path(root) / "hwmon0")
        transport = HwmonTransport(HwmonDecoder(plausible), clock=clock, path=path,
                                   sensor=sensor, root=root)
    else:
        from wattd.sources.http_plug import PlugTransport

        url, password = meter.url, meter.password()
        if simulate_dir is not None:
            from wattd.simulator.plug_http import PlugModel, PlugServer

            model = PlugModel(meter.driver, _power(meter), channel=meter.channel or 0,
                              username=meter.username or "admin", password=password)
            simulator = PlugServer(model).start()
            url = simulator.url
        if not url:
            raise ConfigError(f"driver {meter.driver} needs a 'url'", key="url")
        transport = PlugTransport(meter.driver, url, clock=clock, channel=meter.channel or 0,
                                  timeout_s=timeout_s, username=meter.username,
                                  password=password, plausible=plausible)
    source = PolledSource(meter.name, meter.driver, transport,
                          poll_interval_s=meter.poll_interval_s, on_reading=on_reading,
                          on_error=on_error, clock=clock, static_tags=meter.tags,
                          clock_synced=clock_synced)
    return source, simulator


def _plausible(meter: PolledMeterLike, dc: bool) -> RangesLike:
    """The meter's ranges; a DC meter left at the mains defaults (a MeterConfig built
    in code: the config loader already gives DC meters the DC defaults) gets DC's."""
    ranges = Plausible.of(meter.plausible)
    if dc and ranges == MAINS_PLAUSIBLE:
        return DC_PLAUSIBLE
    return ranges


def _power(meter: PolledMeterLike) -> Any:
    from wattd.simulator.meter import power_source

    power_w = meter.power_w
    if power_w is None and meter.profile is None:
        power_w = SIMULATED_POWER_W[meter.driver]
    return power_source(power_w, meter.profile)


def _serial_transport(meter: PolledMeterLike, port: str, clock: Clock, timeout_s: float,
                      plausible: RangesLike) -> PollTransport:
    import dataclasses

    from wattd.sources.polled_serial import SerialPollTransport

    settings = get_driver(meter.driver).serial
    if meter.baudrate and meter.baudrate != settings.baudrate:
        settings = dataclasses.replace(settings, baudrate=meter.baudrate)
    core: Any
    if meter.driver == "mcp39f511n":
        from wattd.protocols.mcp39f511n import MCP39F511NDecoder

        calibration = get_driver("mcp39f511n").calibration(meter.calibration or None)
        core = MCP39F511NDecoder(calibration, channel=meter.channel or 1, plausible=plausible)
    else:
        from wattd.protocols.um import UMDecoder

        core = UMDecoder(plausible)
    return SerialPollTransport(port, core, settings, clock=clock, reply_timeout_s=timeout_s,
                               latency_ms=meter.latency_ms)


def _start_serial_sim(meter: PolledMeterLike, link: Path) -> Any:
    from wattd.simulator.chip_polled import MCP39F511NChipModel, UMChipModel
    from wattd.simulator.pty_server import PtyMeterServer

    chip: Any
    if meter.driver == "mcp39f511n":
        cal = get_driver("mcp39f511n").calibration(meter.calibration or None)
        chip = MCP39F511NChipModel(_power(meter), channel=meter.channel or 1,
                                   energy_j_per_count=cal["energy_j_per_count"],
                                   power_w_per_count=cal["power_w_per_count"])
    else:
        chip = UMChipModel(_power(meter))
    return PtyMeterServer(chip, get_driver(meter.driver).serial, link_path=link).start()
