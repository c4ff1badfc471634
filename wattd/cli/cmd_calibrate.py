"""wattd calibrate -c FILE --meter M --reference-watts W [--reference-volts V]

Reads the meter live for ``--seconds`` (default 30) with the configured
calibration, compares the mean against the reference (a steady resistive
load of known power, and optionally a trusted voltmeter), and prints the
YAML block to paste into that meter's entry. Exit 0 with a block, 1 when the
meter gave too few readings, 2 for a config or usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import statistics
import sys
from typing import Any

MIN_READINGS = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=None, metavar="FILE",
                        help="config file (default: $WATTD_CONFIG, then /etc/wattd/config.yaml)")
    parser.add_argument("--meter", required=True, metavar="M", help="meter name in the config")
    parser.add_argument("--reference-watts", type=float, required=True, metavar="W",
                        help="true power of the reference load")
    parser.add_argument("--reference-volts", type=float, default=None, metavar="V",
                        help="true mains voltage (from a trusted meter)")
    parser.add_argument("--seconds", type=float, default=30.0, metavar="S",
                        help="how long to read the meter (default 30)")


async def _collect(meter: Any, seconds: float) -> list[Any]:
    """Run the meter's source for ``seconds``; its readings, with wide plausibility."""
    from wattd.config import PlausibleRanges
    from wattd.config.polled import POLLED_DRIVERS
    from wattd.readings import Reading

    # The meter may be off by a lot (or read negative power) before calibration:
    # keep everything a real chip could send.
    wide = PlausibleRanges(voltage_v=(1.0, 1000.0), current_a=(0.0, 200.0),
                           power_w=(-100_000.0, 100_000.0))
    meter = dataclasses.replace(meter, plausible=wide)
    readings: list[Reading] = []
    source: Any
    if meter.driver == "pulse":
        from wattd.sources.pulse_source import PulseSource

        source = PulseSource(meter, on_reading=readings.append)
    elif meter.driver in POLLED_DRIVERS:
        from wattd.daemon.polled_meters import make_polled_source

        source, _ = make_polled_source(meter, on_reading=readings.append)
    else:
        from wattd.sources.serial_config import make_serial_source

        source = make_serial_source(meter, port=meter.port, driver=meter.driver,
                                    on_reading=readings.append)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.sleep(seconds)
    finally:
        result = source.stop()
        if inspect.isawaitable(result):
            await result
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()
    return readings


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def execute(args: argparse.Namespace) -> int:
    from wattd.config import load_config
    from wattd.errors import ConfigError, UsageError
    from wattd.protocols.calibration import CHECK_ONLY, CalibrationError, Measured, derive

    cfg = load_config(args.config)
    meters = {m.name: m for m in cfg.meters}
    meter = meters.get(args.meter)
    if meter is None:
        raise UsageError(f"no meter {args.meter!r} in {cfg.path} (meters: "
                         f"{', '.join(meters)})")
    if meter.driver == "simulated":
        raise UsageError("a simulated meter needs no calibration")
    if meter.driver == "pulse":
        from wattd.protocols.pulse import HLW8012_AMPS_PER_HZ, HLW8012_VOLTS_PER_HZ

        current: dict[str, float] = {}
        if meter.cf1_pin is not None:
            current = {"amps_per_hz": HLW8012_AMPS_PER_HZ, "volts_per_hz": HLW8012_VOLTS_PER_HZ}
            current.update(meter.calibration)
    elif meter.driver in CHECK_ONLY:
        current = {}
    else:
        from wattd.protocols.registry import get_driver

        current = get_driver(meter.driver).calibration(meter.calibration)
    import structlog

    from wattd.logsetup import setup_logging

    # stdout carries only the block to paste; the meter's log lines go to stderr
    # (for this command only: the previous logging set-up is restored after).
    saved = structlog.get_config()
    setup_logging("console", cfg.log.level if cfg.log.level != "debug" else "info")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    print(f"reading meter {meter.name!r} ({meter.driver}) for {args.seconds:g} s ...",
          file=sys.stderr)
    try:
        readings = asyncio.run(_collect(meter, args.seconds))
    finally:
        structlog.configure(**saved)
    powers = [r.power_w for r in readings if r.power_w is not None]
    if len(powers) < MIN_READINGS:
        print(f"wattd calibrate: only {len(powers)} reading(s) from {meter.name!r} in "
              f"{args.seconds:g} s; check the port/pin and the wiring", file=sys.stderr)
        return 1
    mean_p = statistics.fmean(powers)
    rel_stdev = (statistics.stdev(powers) / abs(mean_p)) if len(powers) > 1 and mean_p else 0.0
    counted = [r for r in readings if r.energy_j is not None]
    counter_j = duration_s = None
    if len(counted) >= 2:
        counter_j = (counted[-1].energy_j or 0.0) - (counted[0].energy_j or 0.0)
        duration_s = (counted[-1].t_boot_ns - counted[0].t_boot_ns) / 1e9
    measured = Measured(power_w=mean_p, voltage_v=_mean([r.voltage_v for r in readings]),
                        current_a=_mean([r.current_a for r in readings]),
                        samples=len(powers), power_rel_stdev=rel_stdev,
                        counter_energy_j=counter_j, duration_s=duration_s or 0.0)
    pulse_keys = {"watts_per_hz": meter.watts_per_hz, "joules_per_pulse": meter.joules_per_pulse,
                  "pulses_per_kwh": meter.pulses_per_kwh}
    try:
        derived = derive(meter.driver, current, measured, reference_w=args.reference_watts,
                         reference_v=args.reference_volts, pulse_keys=pulse_keys)
    except CalibrationError as exc:
        raise ConfigError(str(exc), key="calibration") from None
    v = "-" if measured.voltage_v is None else f"{measured.voltage_v:.2f} V"
    a = "-" if measured.current_a is None else f"{measured.current_a:.4f} A"
    ref_v = "" if args.reference_volts is None else f"  {args.reference_volts:.2f} V"
    print(f"# wattd calibrate: meter {meter.name} ({meter.driver}), {measured.samples} "
          f"readings in {args.seconds:g} s")
    print(f"#   measured  {measured.power_w:.3f} W  {v}  {a}")
    print(f"#   reference {args.reference_watts:.3f} W{ref_v}")
    for note in derived.notes:
        print(f"#   note: {note}")
    if not (derived.meter_keys or derived.calibration):
        print("# nothing to paste")
        return 0
    print(f"# paste into the entry of meter {meter.name!r} in {cfg.path}:")
    for key, value in derived.meter_keys.items():
        print(f"    {key}: {_fmt(value)}")
    if derived.calibration:
        print("    calibration:")
        for key, value in derived.calibration.items():
            print(f"      {key}: {_fmt(value)}")
    return 0
