"""A simulated hwmon sensor: a directory of sysfs-like files kept current by a thread.

Files are replaced atomically (write + rename) so a reader never sees half a
number, as with sysfs. ``remove(name)`` makes a file vanish (a sensor unbound
or unplugged); ``restore()`` brings it back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from wattd.protocols.hwmon import NAME_FILE, POWER_FILE, encode_files
from wattd.simulator.power_profile import PowerSource

UPDATE_INTERVAL_S = 0.02  # the ina226's conversion time with averaging is a few ms


class HwmonSimulator:
    def __init__(self, directory: str | os.PathLike[str], power: PowerSource, *,
                 sensor: str = "ina226", voltage_v: float = 5.1,
                 power_file: bool = True) -> None:
        self.directory = Path(directory)
        self.power = power
        self.sensor = sensor
        self.voltage_v = voltage_v
        self.power_file = power_file
        self.removed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / NAME_FILE).write_text(f"{sensor}\n", encoding="ascii")
        self.update()

    def update(self) -> None:
        power = self.power.power_at(time.monotonic() - self._t0)
        files = encode_files(voltage_v=self.voltage_v, current_a=power / self.voltage_v,
                             power_w=power if self.power_file else None)
        for name, text in files.items():
            if name in self.removed:
                continue
            tmp = self.directory / f".{name}.tmp"
            tmp.write_text(text, encoding="ascii")
            os.replace(tmp, self.directory / name)

    def remove(self, name: str = POWER_FILE) -> None:
        self.removed.add(name)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / name).unlink()

    def restore(self) -> None:
        self.removed.clear()
        self.update()

    def start(self) -> HwmonSimulator:
        self._thread = threading.Thread(target=self._serve, name="sim hwmon", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.wait(UPDATE_INTERVAL_S):
            with contextlib.suppress(OSError):
                self.update()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
