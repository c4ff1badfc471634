"""A complete simulated meter: a chip model for a driver, served on a pty.

``wattd simulate`` and ``wattd run --simulate`` both start one with
``start_simulated_meter``. Chip models are looked up per driver in ``CHIPS``
for streamed chips; polled chips (BL0940/BL0942) are answered by
``chip_bl09xx.PolledChipModel``, which reads the host's requests from the pty.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from wattd.errors import ConfigError
from wattd.protocols.registry import get_driver
from wattd.simulator.chip_hlw8032 import FRAME_INTERVAL_S, ChipModel
from wattd.simulator.power_profile import ConstantPower, PowerProfile, PowerSource
from wattd.simulator.pty_server import FrameSource, PolledChip, PtyMeterServer

# driver name -> (power source, resolved calibration, seed, pf_start) -> chip model
ChipFactory = Callable[[PowerSource, Mapping[str, float], "int | None", int], FrameSource]


def _hlw8032_chip(power: PowerSource, calibration: Mapping[str, float], seed: int | None,
                  pf_start: int) -> FrameSource:
    return ChipModel(power, kv=calibration["kv"], ki=calibration["ki"], seed=seed,
                     pf_start=pf_start)


CHIPS: dict[str, ChipFactory] = {"cse7766": _hlw8032_chip, "hlw8032": _hlw8032_chip,
                                 "gb202": _hlw8032_chip}


def power_source(power_w: float | None = None,
                 profile: str | os.PathLike[str] | None = None, *,
                 power_model: str = "constant", idle_w: float = 2.0,
                 busy_w: float = 5.0) -> PowerSource:
    """A constant power or a profile file (see ``power_profile``); 3 W by default.
    ``power_model="cpu"``: the machine's CPU use (see ``cpu_power``)."""
    if power_model == "cpu":
        from wattd.simulator.cpu_power import CpuFollowingPower

        return CpuFollowingPower(idle_w, busy_w)
    if profile is not None:
        return PowerProfile.from_file(profile)
    return ConstantPower(3.0 if power_w is None else float(power_w))


def make_chip(driver: str, *, power_w: float | None = None,
              profile: str | os.PathLike[str] | None = None,
              calibration: Mapping[str, float] | None = None, seed: int | None = None,
              pf_start: int = 0, address: int = 0, power_model: str = "constant",
              idle_w: float = 2.0, busy_w: float = 5.0) -> FrameSource | PolledChip:
    """The chip model for ``driver``: a streamed chip (``frame_at``) or, for
    BL0940/BL0942, a polled chip (``receive``). Raises ConfigError for a driver
    with no simulator."""
    spec = get_driver(driver)
    power = power_source(power_w, profile, power_model=power_model, idle_w=idle_w,
                         busy_w=busy_w)
    if spec.name in ("mcp39f511n", "um"):  # SPEC 8 serial meters: wattd.simulator.chip_polled
        from wattd.simulator.chip_polled import MCP39F511NChipModel, UMChipModel

        if spec.name == "um":
            return UMChipModel(power, seed=seed)
        cal = spec.calibration(calibration)
        return MCP39F511NChipModel(power, energy_j_per_count=cal["energy_j_per_count"],
                                   power_w_per_count=cal["power_w_per_count"], seed=seed)
    if spec.polled:  # BL0940/BL0942: the chip answers polls
        from wattd.simulator.chip_bl09xx import PolledChipModel

        return PolledChipModel(spec.name, power,
                               calibration=spec.calibration(calibration), address=address,
                               seed=seed, cf_start=pf_start)
    chip_factory = CHIPS.get(spec.name)
    if chip_factory is None:
        raise ConfigError(f"no simulator for driver {driver!r} yet", key="driver")
    return chip_factory(power, spec.calibration(calibration), seed, pf_start)


def start_simulated_meter(driver: str, *, power_w: float | None = None,
                          profile: str | os.PathLike[str] | None = None,
                          calibration: Mapping[str, float] | None = None,
                          link_path: str | os.PathLike[str] | None = None,
                          seed: int | None = None, pf_start: int = 0,
                          address: int = 0, power_model: str = "constant",
                          idle_w: float = 2.0, busy_w: float = 5.0) -> PtyMeterServer:
    """Start a simulated ``driver`` meter in a thread; returns the running server.

    The decoder made by ``get_driver(driver).make_decoder(calibration)`` reads
    ``power_w`` (or the profile) back from it. Use ``.port_path`` as the
    meter's port and call ``.stop()`` when done (also ``.unplug()``/``.replug()``).
    """
    spec = get_driver(driver)
    chip = make_chip(driver, power_w=power_w, profile=profile, calibration=calibration,
                     seed=seed, pf_start=pf_start, address=address, power_model=power_model,
                     idle_w=idle_w, busy_w=busy_w)
    if spec.polled:  # BL0940/BL0942: the chip answers polls read from the pty
        return PtyMeterServer(chip, spec.serial, link_path=link_path).start()
    return PtyMeterServer(chip, spec.serial, link_path=link_path,
                          frame_interval_s=FRAME_INTERVAL_S).start()
