"""Configuration (SPEC 6): typed dataclasses, validated on load.

``schema`` holds the sections and their checks; ``loader`` the generic YAML ->
dataclass builder whose errors name the file, the line and the key.
"""

from wattd.config.fleet import MulticastConfig, PrometheusConfig
from wattd.config.schema import (
    DEFAULT_CONFIG_PATH,
    DRIVERS,
    SERIAL_DRIVERS,
    ClockConfig,
    Config,
    GpioConfig,
    InfluxConfig,
    JournalConfig,
    LogConfig,
    MarkersConfig,
    MeterConfig,
    PlausibleRanges,
    RateConfig,
    default_config_path,
    load_config,
    load_config_text,
)
from wattd.netaddr import parse_listen

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DRIVERS",
    "SERIAL_DRIVERS",
    "ClockConfig",
    "Config",
    "GpioConfig",
    "InfluxConfig",
    "JournalConfig",
    "LogConfig",
    "MarkersConfig",
    "MeterConfig",
    "MulticastConfig",
    "PlausibleRanges",
    "PrometheusConfig",
    "RateConfig",
    "default_config_path",
    "load_config",
    "load_config_text",
    "parse_listen",
]
