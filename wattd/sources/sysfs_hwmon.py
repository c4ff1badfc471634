"""A Linux hwmon sensor read from sysfs (INA219/INA226 via ina2xx): the thin transport.

``open`` finds the sensor directory (``path``, or the hwmon whose ``name`` is
``sensor``, searched again after a re-plug) and learns whether it has
``power1_input``. Each poll reads the files in a worker thread (an ina2xx
read is an I2C transfer) and stamps the reading at the midpoint of the reads.
A file that vanished or cannot be read is a port error: reconnect with backoff.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from wattd.clock.timesource import Clock, clock_pair
from wattd.protocols.base import DecodeCounters, Measurement
from wattd.protocols.hwmon import NAME_FILE, POWER_FILE, HwmonDecoder, files_to_read
from wattd.sources.polled_source import MeterPortError, Stamped

HWMON_ROOT = "/sys/class/hwmon"


def find_sensor(sensor: str, root: str | os.PathLike[str] = HWMON_ROOT) -> Path:
    """The first ``root/hwmonN`` whose ``name`` file holds ``sensor``."""
    base = Path(root)
    try:
        entries = sorted(base.iterdir())
    except OSError as exc:
        raise MeterPortError(f"cannot list {base}: {exc.strerror or exc}") from None
    for entry in entries:
        try:
            if (entry / NAME_FILE).read_text(encoding="ascii").strip() == sensor:
                return entry
        except (OSError, UnicodeDecodeError):
            continue
    raise MeterPortError(f"no hwmon sensor named {sensor!r} under {base}")


class HwmonTransport:
    def __init__(self, decoder: HwmonDecoder, *, clock: Clock, path: str | None = None,
                 sensor: str | None = None, root: str | os.PathLike[str] = HWMON_ROOT) -> None:
        if (path is None) == (sensor is None):
            raise ValueError("give exactly one of path and sensor")
        self.decoder = decoder
        self.clock = clock
        self.path = path
        self.sensor = sensor
        self.root = root
        self.directory: Path | None = None
        self.has_power_file = False

    @property
    def port(self) -> str:
        if self.directory is not None:
            return str(self.directory)
        return self.path or f"sensor {self.sensor}"

    @property
    def counters(self) -> DecodeCounters:
        return self.decoder.counters

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        directory = Path(self.path) if self.path is not None else find_sensor(
            self.sensor or "", self.root)
        if not directory.is_dir():
            raise MeterPortError(f"{directory}: no such hwmon directory")
        self.has_power_file = (directory / POWER_FILE).exists()
        missing = [n for n in files_to_read(self.has_power_file) if not (directory / n).exists()]
        if missing and not self.has_power_file:
            raise MeterPortError(f"{directory}: no power1_input and no {', '.join(missing)}")
        self.directory = directory

    async def close(self) -> None:
        self.directory = None

    def _read(self) -> tuple[dict[str, str], int, int, int, int]:
        directory = self.directory
        if directory is None:
            raise MeterPortError("sensor not open")
        before = clock_pair(self.clock)
        texts = {}
        for name in files_to_read(self.has_power_file):
            try:
                texts[name] = (directory / name).read_text(encoding="ascii", errors="replace")
            except OSError as exc:
                raise MeterPortError(f"{directory / name}: {exc.strerror or exc}") from None
        after = clock_pair(self.clock)
        return texts, before[0], before[1], after[0], after[1]

    async def poll(self) -> list[Stamped]:
        texts, real0, boot0, real1, boot1 = await asyncio.to_thread(self._read)
        t_ns, t_boot_ns = (real0 + real1) // 2, (boot0 + boot1) // 2
        event = self.decoder.decode(texts, t_ns)
        if isinstance(event, Measurement):
            return [Stamped(event, t_ns, t_boot_ns)]
        return [Stamped(event)]

    def details(self) -> dict[str, Any]:
        return {"power_file": self.has_power_file}
