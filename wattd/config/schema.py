"""wattd's configuration schema (SPEC 6): the sections as typed dataclasses, and
the checks across keys that types alone cannot express.

Building and type-checking the values is ``wattd.config.loader``'s job; every
error here is made by its builder, so it names the file, the line and the key.
Secrets are read from files or the environment, never taken inline.
"""

from __future__ import annotations

import ipaddress
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wattd.config.fleet import MulticastConfig, PrometheusConfig
from wattd.config.loader import NOT_A_KEY, ONE_OR_MANY, DocumentBuilder, load_dataclass
from wattd.config.polled import POLLED_DRIVERS, validate_polled
from wattd.errors import ConfigError, did_you_mean
from wattd.netaddr import parse_listen
from wattd.protocols.registry import driver_names, serial_driver_names
from wattd.secretfile import read_secret

DEFAULT_CONFIG_PATH = "/etc/wattd/config.yaml"
DRIVERS = tuple(dict.fromkeys((*driver_names(), *POLLED_DRIVERS)))
SERIAL_DRIVERS = serial_driver_names()


@dataclass(slots=True)
class PlausibleRanges:
    """Readings outside these ranges are dropped and counted (`implausible`)."""

    voltage_v: tuple[float, float] = (80.0, 300.0)
    current_a: tuple[float, float] = (0.0, 20.0)
    power_w: tuple[float, float] = (0.0, 5000.0)


@dataclass(slots=True)
class MeterConfig:
    name: str
    driver: str = "gb202"
    tags: dict[str, str] = field(default_factory=dict)
    port: str | None = None
    baudrate: int | None = None
    calibration: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    plausible: PlausibleRanges = field(default_factory=PlausibleRanges)
    # polled chips (bl0940, bl0942)
    address: int = 0
    poll_interval_s: float = 0.25
    # pulse meters
    pin: str | int | None = None
    joules_per_pulse: float | None = None
    pulses_per_kwh: float | None = None
    watts_per_hz: float | None = None
    cf1_pin: str | int | None = None
    sel_pin: str | int | None = None
    sel_current_high: bool = True
    debounce_ms: float = 0.0
    # simulated meters (and every serial meter under `wattd run --simulate`)
    power_w: float | None = None
    profile: str | None = None
    # SPEC 8 meters (mcp39f511n, um, hwmon, shelly, tasmota), checked by
    # wattd.config.polled.validate_polled; poll_interval_s and plausible get the
    # driver's defaults when not given.
    channel: int | None = None  # mcp39f511n 1|2 (default 1); plugs' switch/meter index (0)
    path: str | None = None  # hwmon: /sys/class/hwmon/hwmonN
    sensor: str | None = None  # hwmon: the `name` file's content, e.g. ina226
    url: str | None = None  # shelly, tasmota: http://plug.local
    timeout_s: float | None = None  # a reply not in by then is missing (driver default)
    username: str | None = None  # plugs (default admin when password_file is given)
    password_file: str | None = None  # plugs: the password, never inline

    def password(self) -> str | None:
        if self.password_file is None:
            return None
        return _secret_text(self.password_file, "password_file")
    # power_model cpu: idle_w + (busy_w - idle_w) x machine CPU utilisation (SPEC 9.5)
    power_model: Literal["constant", "cpu"] = "constant"
    idle_w: float = 2.0
    busy_w: float = 5.0


@dataclass(slots=True)
class RateConfig:
    per_s: float = 100.0
    burst: int = 200


@dataclass(slots=True)
class MarkersConfig:
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:9288"])
    secret_file: str | None = None
    allow: list[str] = field(default_factory=list)
    auth_window_s: float = 30.0
    skew_limit_ms: float = 250.0
    holdback_ms: float | None = None  # default: skew_limit_ms + one frame period
    stop_wait_s: float = 5.0
    max_run_s: float = 86400.0
    result_window_s: float = 600.0  # a `result` may follow its run's stop this long (SPEC 9.2)
    rate: RateConfig = field(default_factory=RateConfig)
    multicast: MulticastConfig | None = None  # SPEC 10 (wattd.config.fleet)

    @property
    def secret(self) -> bytes | None:
        """The shared secret (``wattd.secretfile.read_secret``); ConfigError when the
        file cannot be read or is empty."""
        if self.secret_file is None:
            return None
        return _read_secret_file(self.secret_file, "markers.secret_file")

    def effective_holdback_ms(self, frame_period_ms: float = 110.0) -> float:
        if self.holdback_ms is not None:
            return self.holdback_ms
        return self.skew_limit_ms + frame_period_ms


@dataclass(slots=True)
class JournalConfig:
    dir: str = "/var/lib/wattd"
    fsync_interval_s: float = 1.0
    max_bytes: int = 1 << 30
    max_age_days: float | None = None
    segment_bytes: int = 16 << 20
    compress: bool = True  # gzip closed segments


@dataclass(slots=True)
class InfluxConfig:
    url: str
    api: Literal["v1", "v2"] = "v2"
    name: str | None = None  # cursor name; default derived from url + database/bucket
    org: str | None = None
    bucket: str | None = None
    token_file: str | None = None
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password_file: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    gzip: bool = True
    timeout_s: float = 10.0
    # "thread": delivered inside the daemon (modest rates); "process": its own process
    delivery: Literal["thread", "process"] = "thread"

    def token(self) -> str | None:
        """v2 token: `token_file`, else $WATTD_INFLUX_TOKEN."""
        if self.token_file:
            return _secret_text(self.token_file, "influxdb.token_file")
        return os.environ.get("WATTD_INFLUX_TOKEN") or None

    def password(self) -> str | None:
        if self.password_file:
            return _secret_text(self.password_file, "influxdb.password_file")
        return None

    @property
    def sink_name(self) -> str:
        if self.name:
            return self.name
        target = self.bucket if self.api == "v2" else self.database
        raw = f"{self.api}-{self.url}-{target or ''}"
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)


@dataclass(slots=True)
class ClockConfig:
    require_sync: bool = False
    require_sync_timeout_s: float = 300.0
    max_error_ms: float = 100.0
    poll_interval_s: float = 5.0
    step_threshold_ms: float = 50.0


@dataclass(slots=True)
class LogConfig:
    format: Literal["console", "json"] | None = None  # default: console on a TTY, else json
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(slots=True)
class GpioConfig:
    status_led_pin: str | int | None = None
    button_pin: str | int | None = None


@dataclass(slots=True)
class Config:
    meters: list[MeterConfig]
    markers: MarkersConfig = field(default_factory=MarkersConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    influxdb: list[InfluxConfig] = field(default_factory=list, metadata=ONE_OR_MANY)
    clock: ClockConfig = field(default_factory=ClockConfig)
    log: LogConfig = field(default_factory=LogConfig)
    gpio: GpioConfig | None = None
    prometheus: PrometheusConfig | None = None  # SPEC 10 (wattd.config.fleet)
    path: str = field(default="<config>", metadata=NOT_A_KEY)  # where it was loaded from

    def meter(self, name: str) -> MeterConfig:
        for meter in self.meters:
            if meter.name == name:
                return meter
        raise KeyError(name)


def _read_secret_file(path: str, key: str, *, allow_empty: bool = False) -> bytes:
    try:
        return read_secret(path, allow_empty=allow_empty)
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path!r}: {exc.strerror}", key=key) from None
    except ValueError as exc:
        raise ConfigError(str(exc), key=key) from None


def _secret_text(path: str, key: str) -> str:
    """A database credential: may be empty (the database refuses it), must be UTF-8."""
    try:
        return _read_secret_file(path, key, allow_empty=True).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path!r} is not UTF-8 text", key=key) from None


def _check_listen(b: DocumentBuilder, markers: MarkersConfig) -> None:
    for i, item in enumerate(markers.listen):
        try:
            parse_listen(item)
        except ValueError as exc:
            raise b.error(("markers", "listen", i), str(exc)) from None
    for i, cidr in enumerate(markers.allow):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise b.error(("markers", "allow", i), f"not a CIDR network: {cidr!r}") from None


def _validate(b: DocumentBuilder, cfg: Config) -> None:
    if not cfg.meters:
        raise b.error(("meters",), "at least one meter is required")
    seen: set[str] = set()
    for i, meter in enumerate(cfg.meters):
        path: tuple[str | int, ...] = ("meters", i)
        if meter.driver not in DRIVERS:
            hint = did_you_mean(meter.driver, DRIVERS)
            extra = f" (did you mean '{hint}'?)" if hint else ""
            raise b.error((*path, "driver"),
                          f"unknown driver {meter.driver!r}{extra}; one of {', '.join(DRIVERS)}")
        if not meter.name or any(c.isspace() for c in meter.name):
            raise b.error((*path, "name"), "meter name must be non-empty, without spaces")
        if meter.name in seen:
            raise b.error((*path, "name"), f"duplicate meter name {meter.name!r}")
        seen.add(meter.name)
        if (meter.driver in SERIAL_DRIVERS and meter.driver not in POLLED_DRIVERS
                and not meter.port):  # polled meters: validate_polled names an example port
            raise b.error((*path, "port"), f"driver {meter.driver} needs a serial 'port'")
        if meter.driver == "pulse":
            if meter.pin is None:
                raise b.error((*path, "pin"), "driver pulse needs a GPIO 'pin'")
            given = [k for k in ("joules_per_pulse", "pulses_per_kwh", "watts_per_hz")
                     if getattr(meter, k) is not None]
            if len(given) != 1:
                raise b.error(path, "driver pulse needs exactly one of joules_per_pulse, "
                                    "pulses_per_kwh, watts_per_hz")
        if meter.power_w is not None and meter.profile is not None:
            raise b.error((*path, "profile"), "give power_w or profile, not both")
        if meter.power_model == "cpu" and not 0 <= meter.idle_w <= meter.busy_w:
            raise b.error((*path, "busy_w"), "power_model cpu needs 0 <= idle_w <= busy_w")
        for key in ("voltage_v", "current_a", "power_w"):
            lo, hi = getattr(meter.plausible, key)
            if lo > hi:
                raise b.error((*path, "plausible", key), "range must be [low, high]")
        if meter.latency_ms < 0:
            raise b.error((*path, "latency_ms"), "must be >= 0")
        validate_polled(b, path, meter, stop_wait_s=cfg.markers.stop_wait_s)
    _check_listen(b, cfg.markers)
    positive = [(("journal", "fsync_interval_s"), cfg.journal.fsync_interval_s),
                (("journal", "max_bytes"), cfg.journal.max_bytes),
                (("journal", "segment_bytes"), cfg.journal.segment_bytes),
                (("markers", "auth_window_s"), cfg.markers.auth_window_s),
                (("markers", "max_run_s"), cfg.markers.max_run_s),
                (("markers", "result_window_s"), cfg.markers.result_window_s),
                (("markers", "rate", "per_s"), cfg.markers.rate.per_s)]
    for key_path, number in positive:
        if number <= 0:
            raise b.error(key_path, "must be > 0")
    for i, db in enumerate(cfg.influxdb):
        path = ("influxdb", i)
        if not db.url.startswith(("http://", "https://")):
            raise b.error((*path, "url"), "must start with http:// or https://")
        if db.api == "v1" and not db.database:
            raise b.error((*path, "database"), "api v1 needs 'database'")
        if db.api == "v2" and not db.bucket:
            raise b.error((*path, "bucket"), "api v2 needs 'bucket'")
        if db.batch_size <= 0:
            raise b.error((*path, "batch_size"), "must be > 0")


def load_config_text(text: str, file: str = "<config>",
                     environ: typing.Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    cfg, b = load_dataclass(Config, text, file,
                            empty="empty configuration (need at least 'meters')")
    cfg.path = file
    _validate(b, cfg)
    state_dir = env.get("STATE_DIRECTORY")
    if state_dir:
        # systemd's StateDirectory= may list several paths, colon-separated.
        cfg.journal.dir = state_dir.split(":")[0]
    return cfg


def default_config_path(environ: typing.Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("WATTD_CONFIG") or DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate. Raises ConfigError naming file, line and key."""
    file = str(path) if path is not None else default_config_path()
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=file) from None
    return load_config_text(text, file)
