"""Configuration (SPEC 6): typed dataclasses, validated on load.

Every error names the file, the line and the key, and unknown keys are
refused with a "did you mean" hint. Secrets are read from files or the
environment, never taken inline.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from wattd.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/wattd/config.yaml"
DRIVERS = ("gb202", "hlw8032", "cse7766", "bl0940", "bl0942", "pulse", "simulated")
SERIAL_DRIVERS = ("gb202", "hlw8032", "cse7766", "bl0940", "bl0942")


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

    @property
    def secret(self) -> bytes | None:
        """The shared secret: the file's content, surrounding whitespace stripped, UTF-8."""
        if self.secret_file is None:
            return None
        return _read_secret_file(self.secret_file, "markers.secret_file").encode("utf-8")

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

    def token(self) -> str | None:
        """v2 token: `token_file`, else $WATTD_INFLUX_TOKEN."""
        if self.token_file:
            return _read_secret_file(self.token_file, "influxdb.token_file")
        return os.environ.get("WATTD_INFLUX_TOKEN") or None

    def password(self) -> str | None:
        if self.password_file:
            return _read_secret_file(self.password_file, "influxdb.password_file")
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
    influxdb: list[InfluxConfig] = field(default_factory=list)
    clock: ClockConfig = field(default_factory=ClockConfig)
    log: LogConfig = field(default_factory=LogConfig)
    gpio: GpioConfig | None = None
    path: str = "<config>"  # where it was loaded from (not a YAML key)

    def meter(self, name: str) -> MeterConfig:
        for meter in self.meters:
            if meter.name == name:
                return meter
        raise KeyError(name)


_NOT_KEYS = {"path"}


def _read_secret_file(path: str, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path!r}: {exc.strerror}", key=key) from None


# ---------------------------------------------------------------------------
# YAML with line numbers


_SCALARS = yaml.SafeLoader("")  # resolves scalar nodes (ints, floats, bools, null) the safe way


class _Located:
    """YAML values plus the line of every mapping key and sequence item."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str | int, ...], int] = {}

    def convert(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                sub = (*path, str(key))
                self.lines[sub] = key_node.start_mark.line + 1
                out[str(key)] = self.convert(value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return _SCALARS.construct_object(node)


class _Builder:
    def __init__(self, file: str, lines: dict[tuple[str | int, ...], int]) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: tuple[str | int, ...], message: str) -> ConfigError:
        line = None
        probe = path
        while probe and line is None:
            line = self.lines.get(probe)
            probe = probe[:-1]
        key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        return ConfigError(message, file=self.file, line=line, key=key or None)

    def build(self, tp: Any, value: Any, path: tuple[str | int, ...]) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            non_none = [a for a in args if a is not type(None)]
            last: ConfigError | None = None
            for arg in non_none:
                try:
                    return self.build(arg, value, path)
                except ConfigError as exc:
                    last = exc
            assert last is not None
            raise last
        if origin is Literal:
            if value not in args:
                raise self.error(path, f"must be one of {', '.join(map(str, args))}, "
                                       f"not {value!r}")
            return value
        if dataclasses.is_dataclass(tp):
            return self.build_dataclass(tp, value, path)
        if origin is list:
            if isinstance(value, str | int | float) and args[0] is str:
                value = [value]
            if not isinstance(value, list):
                raise self.error(path, f"must be a list, not {type(value).__name__}")
            return [self.build(args[0], item, (*path, i)) for i, item in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                raise self.error(path, f"must be a mapping, not {type(value).__name__}")
            return {str(k): self.build(args[1], v, (*path, str(k))) for k, v in value.items()}
        if origin is tuple:
            if not isinstance(value, list) or len(value) != len(args):
                raise self.error(path, f"must be a list of {len(args)} numbers, e.g. [80, 300]")
            return tuple(self.build(a, v, (*path, i)) for i, (a, v) in
                         enumerate(zip(args, value, strict=True)))
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(path, f"must be true or false, not {value!r}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(path, f"must be an integer, not {value!r}")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(path, f"must be a number, not {value!r}")
            return float(value)
        if tp is str:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.error(path, f"must be a string, not {value!r}")
            return str(value)
        raise self.error(path, f"unsupported type {tp!r}")  # pragma: no cover

    def build_dataclass(self, cls: Any, value: Any, path: tuple[str | int, ...]) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, not {type(value).__name__}")
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS]
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else \
                    f" (known keys: {', '.join(known)})"
                raise self.error((*path, key), f"unknown key{suffix}")
            kwargs[key] = self.build(hints[key], item, (*path, key))
        for f in dataclasses.fields(cls):
            if f.name in _NOT_KEYS:
                continue
            no_default = (f.default is dataclasses.MISSING
                          and f.default_factory is dataclasses.MISSING)
            if no_default and f.name not in kwargs:
                raise self.error((*path, f.name), "is required")
        return cls(**kwargs)


def _check_listen(b: _Builder, markers: MarkersConfig) -> None:
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


def parse_listen(text: str, default_port: int = 9288) -> tuple[str, int]:
    """'127.0.0.1:9288', '[::]:9288', '0.0.0.0', '[::1]' -> (host, port)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"bad address {text!r}: host must be an IP address") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"bad port in {text!r}")
        port = int(port_text)
    return host, port


def _validate(b: _Builder, cfg: Config) -> None:
    if not cfg.meters:
        raise b.error(("meters",), "at least one meter is required")
    seen: set[str] = set()
    for i, meter in enumerate(cfg.meters):
        path: tuple[str | int, ...] = ("meters", i)
        if meter.driver not in DRIVERS:
            hint = difflib.get_close_matches(meter.driver, DRIVERS, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise b.error((*path, "driver"),
                          f"unknown driver {meter.driver!r}{extra}; one of {', '.join(DRIVERS)}")
        if not meter.name or any(c.isspace() for c in meter.name):
            raise b.error((*path, "name"), "meter name must be non-empty, without spaces")
        if meter.name in seen:
            raise b.error((*path, "name"), f"duplicate meter name {meter.name!r}")
        seen.add(meter.name)
        if meter.driver in SERIAL_DRIVERS and not meter.port:
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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None:
        raise ConfigError("empty configuration (need at least 'meters')", file=file)
    located = _Located()
    data = located.convert(node, ())
    b = _Builder(file, located.lines)
    if not isinstance(data, dict):
        raise b.error((), "the top level must be a mapping of sections")
    if isinstance(data.get("influxdb"), dict):
        data["influxdb"] = [data["influxdb"]]
        located.lines.update({(k[0], 0, *k[1:]): v for k, v in list(located.lines.items())
                              if k and k[0] == "influxdb"})
    cfg: Config = b.build_dataclass(Config, data, ())
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
