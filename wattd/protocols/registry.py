"""Driver table: config ``driver`` name -> how to talk to that chip and decode it.

To add a driver, write its pure decoder and one ``register(DriverSpec(...))``
call below (the BL09xx drivers go here the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from wattd.errors import ConfigError, did_you_mean
from wattd.protocols.base import Decoder, SerialSettings
from wattd.protocols.bl09xx import BL09xxDecoder
from wattd.protocols.bl0940 import BL0940Decoder
from wattd.protocols.bl0942 import BL0942Decoder
from wattd.protocols.hlw8032 import HLW8032Decoder
from wattd.protocols.mcp39f511n import CALIBRATION_DEFAULTS as MCP_CALIBRATION_DEFAULTS
from wattd.protocols.plausible import RangesLike

# (spec, resolved calibration, plausible ranges, byte wire time in ns, chip address) -> decoder
DecoderFactory = Callable[["DriverSpec", Mapping[str, float], "RangesLike | None", int, int],
                          Decoder]


@dataclass(slots=True, frozen=True)
class DriverSpec:
    name: str
    description: str
    serial: SerialSettings
    frame_bytes: int  # bytes of one answer/frame: its wire time is subtracted from stamps
    polled: bool  # True: the host must write ``decoder.poll_request()`` every poll interval
    factory: DecoderFactory
    # Calibration keys this driver accepts, with their defaults.
    calibration_defaults: Mapping[str, float] = field(default_factory=dict)

    def calibration(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Defaults merged with the user's values; an unknown key is a ConfigError."""
        merged = dict(self.calibration_defaults)
        for key, value in (overrides or {}).items():
            if key not in merged:
                hint = did_you_mean(key, merged)
                known = ", ".join(sorted(merged)) or "none"
                raise ConfigError(
                    f"driver {self.name!r} has no calibration key {key!r}"
                    + (f" (did you mean {hint!r}?)" if hint else f" (known: {known})"),
                    key=f"calibration.{key}")
            merged[key] = float(value)
        return merged

    def make_decoder(self, calibration: Mapping[str, float] | None = None,
                     plausible: RangesLike | None = None, *,
                     settings: SerialSettings | None = None, address: int = 0) -> Decoder:
        """A fresh decoder. ``settings`` (e.g. another baud rate) sets the byte wire time;
        ``address`` is the chip address of polled chips (BL0942: 0-3)."""
        wire = settings or self.serial
        return self.factory(self, self.calibration(calibration), plausible,
                            wire.wire_time_ns(1), address)


DRIVERS: dict[str, DriverSpec] = {}


def register(spec: DriverSpec) -> DriverSpec:
    DRIVERS[spec.name] = spec
    return spec


def get_driver(name: str) -> DriverSpec:
    try:
        return DRIVERS[name]
    except KeyError:
        hint = did_you_mean(name, DRIVERS)
        raise ConfigError(f"unknown serial driver {name!r}"
                          + (f" (did you mean {hint!r}?)" if hint else
                             f" (known: {', '.join(serial_driver_names())})"),
                          key="driver") from None


def serial_driver_names() -> tuple[str, ...]:
    return tuple(sorted(DRIVERS))


# Drivers that are not a chip on a serial port: GPIO pulse counting
# (wattd.protocols.pulse) and a simulated chip served on a pty.
OTHER_DRIVERS: tuple[str, ...] = ("pulse", "simulated")


def driver_names() -> tuple[str, ...]:
    """Every ``driver`` a meter's config may name."""
    return (*serial_driver_names(), *OTHER_DRIVERS)


# --------------------------------------------------------------- HLW8032 family
def _hlw8032_factory(spec: DriverSpec, calibration: Mapping[str, float],
                     plausible: RangesLike | None, byte_time_ns: int, address: int) -> Decoder:
    return HLW8032Decoder(spec.name, kv=calibration["kv"], ki=calibration["ki"],
                          plausible=plausible, byte_time_ns=byte_time_ns)


HLW8032_SERIAL = SerialSettings(baudrate=4800, bytesize=8, parity="E", stopbits=1)

register(DriverSpec(
    "cse7766", "CSE7766 / CSE7759B, factory-calibrated (Kv = Ki = 1)",
    HLW8032_SERIAL, 24, polled=False, factory=_hlw8032_factory,
    calibration_defaults={"kv": 1.0, "ki": 1.0}))
register(DriverSpec(
    "hlw8032", "HLW8032, board coefficients Kv (voltage divider) and Ki (shunt)",
    HLW8032_SERIAL, 24, polled=False, factory=_hlw8032_factory,
    calibration_defaults={"kv": 1.88, "ki": 1.0}))
register(DriverSpec(
    "gb202", "GreenBlue GB202 preset: the HLW8032 frame with Kv 1.88, Ki 1.0",
    HLW8032_SERIAL, 24, polled=False, factory=_hlw8032_factory,
    calibration_defaults={"kv": 1.88, "ki": 1.0}))


# --------------------------------------------------------------- BL0940 / BL0942 (polled)
def _bl09xx_factory(cls: type[BL09xxDecoder]) -> DecoderFactory:
    def factory(spec: DriverSpec, calibration: Mapping[str, float],
                plausible: RangesLike | None, byte_time_ns: int, address: int) -> Decoder:
        return cls(calibration, address=address, plausible=plausible,
                   byte_time_ns=byte_time_ns)
    return factory


def _references(cls: type[BL09xxDecoder]) -> dict[str, float]:
    refs = cls.DEFAULT_REFERENCES
    return {"voltage_reference": refs.voltage, "current_reference": refs.current,
            "power_reference": refs.power, "energy_reference": refs.energy}


register(DriverSpec(
    "bl0940", "BL0940, polled (0x50 0xAA), 35-byte answers, 4800 8N1",
    BL0940Decoder.SERIAL, BL0940Decoder.LAYOUT.frame_len, polled=True,
    factory=_bl09xx_factory(BL0940Decoder), calibration_defaults=_references(BL0940Decoder)))
register(DriverSpec(
    "bl0942", "BL0942, polled (0x58|address 0xAA), 23-byte answers, 4800 8N1 "
    "(or the chip's configured baud rate)",
    BL0942Decoder.SERIAL, BL0942Decoder.LAYOUT.frame_len, polled=True,
    factory=_bl09xx_factory(BL0942Decoder), calibration_defaults=_references(BL0942Decoder)))


# --------------------------------------------------------------- meters people own (SPEC 8)
# The MCP39F511N and UM speak over serial: registered above's way too, so that
# `wattd identify` and `wattd replay` decode their captures. In the daemon all
# five are polled by wattd.sources.polled_source (request/reply midpoint stamps).
def _mcp39f511n_factory(spec: DriverSpec, calibration: Mapping[str, float],
                        plausible: RangesLike | None, byte_time_ns: int, address: int) -> Decoder:
    from wattd.protocols.mcp39f511n import MCP39F511NDecoder

    if address:
        raise ConfigError("mcp39f511n has no chip address (use 'channel: 1|2')", key="address")
    return MCP39F511NDecoder(calibration, plausible=plausible)


def _um_factory(spec: DriverSpec, calibration: Mapping[str, float],
                plausible: RangesLike | None, byte_time_ns: int, address: int) -> Decoder:
    from wattd.protocols.um import UMDecoder

    if address:
        raise ConfigError("um has no chip address", key="address")
    return UMDecoder(plausible)


register(DriverSpec(
    "mcp39f511n", "Microchip MCP39F511N demo board, polled register reads, 115200 8N1",
    SerialSettings(baudrate=115200), 31, polled=True, factory=_mcp39f511n_factory,
    calibration_defaults=dict(MCP_CALIBRATION_DEFAULTS)))
register(DriverSpec(
    "um", "RDTech UM24C / UM25C / UM34C USB meter, polled with 0xF0, 130-byte answers, 9600 8N1",
    SerialSettings(baudrate=9600), 130, polled=True, factory=_um_factory))


@dataclass(slots=True, frozen=True)
class PolledMeterSpec:
    """A SPEC 8 meter: how it is reached and its defaults."""

    name: str
    transport: str  # "serial" | "sysfs" | "http"
    poll_interval_s: float
    dc: bool  # DC meter: plausibility 0-30 V, 0-10 A (else mains 80-300 V)
    timeout_s: float  # a reply (or HTTP answer) not in by then is missing
    default_channel: int = 0


POLLED_METERS: dict[str, PolledMeterSpec] = {spec.name: spec for spec in (
    PolledMeterSpec("mcp39f511n", "serial", 0.1, dc=False, timeout_s=0.5, default_channel=1),
    PolledMeterSpec("um", "serial", 0.5, dc=True, timeout_s=1.0),
    PolledMeterSpec("hwmon", "sysfs", 0.1, dc=True, timeout_s=1.0),
    PolledMeterSpec("shelly", "http", 1.0, dc=False, timeout_s=2.0),
    PolledMeterSpec("tasmota", "http", 1.0, dc=False, timeout_s=2.0),
)}
