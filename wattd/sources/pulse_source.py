"""The ``pulse`` driver: a CF pin or an energy LED on a GPIO, read with gpiozero.

Thin transport: gpiozero calls back on every edge (in its own thread); the
callback stamps the edge on CLOCK_BOOTTIME and hands it to the pure core
(:mod:`wattd.protocols.pulse`) under a lock. A steady tick (every
``sample_interval_s``, default 1 s) turns the core's state into one
:class:`~wattd.readings.Reading`, stamped at the tick: between pulses the
cap rule makes power depend on *when* it is asked, so readings come at a
steady cadence rather than per pulse (a 1000 imp/kWh LED would otherwise
give one reading every 20 minutes). No reading is emitted before two pulses
have given a first interval (power is unknown until then).

With ``cf1_pin`` and ``sel_pin`` (HLW8012/BL0937) the source flips SEL every
``cf1_window_s`` (default 2 s) and reads current and voltage from CF1;
``sel_current_high`` says which SEL level selects current on this board.

A pin that cannot be claimed (already in use, no GPIO chip, permission) is a
counted, logged error; the source retries after ``retry_s``, doubling up to
``PIN_RETRY_MAX_S``, and the daemon goes on with its other meters.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from wattd.backoff import Backoff
from wattd.clock.timesource import SYSTEM_CLOCK, Clock, clock_pair
from wattd.config import MeterConfig
from wattd.logsetup import get_logger
from wattd.protocols.pulse import (
    HLW8012_AMPS_PER_HZ,
    HLW8012_VOLTS_PER_HZ,
    Cf1Meter,
    Cf1Mode,
    PulsePower,
    joules_per_pulse,
)
from wattd.readings import Reading

log = get_logger("wattd.sources.pulse")

CALIBRATION_KEYS = ("amps_per_hz", "volts_per_hz")
PIN_RETRY_MAX_S = 30.0  # a pin that stays busy is retried at least this often


class PulseSource:
    """One pulse meter. ``open()`` claims the pins, ``tick()`` emits one reading;
    ``run()`` does both on a steady cadence until ``stop()``."""

    def __init__(self, cfg: MeterConfig, *, on_reading: Callable[[Reading], None],
                 clock: Clock = SYSTEM_CLOCK, pin_factory: Any = None,
                 sample_interval_s: float = 1.0, cf1_window_s: float = 2.0,
                 retry_s: float = 5.0) -> None:
        for key in cfg.calibration:
            if key not in CALIBRATION_KEYS:
                from wattd.errors import ConfigError

                raise ConfigError(f"driver pulse has no calibration key {key!r}; known: "
                                  f"{', '.join(CALIBRATION_KEYS)}", key=f"calibration.{key}")
        self.cfg = cfg
        self.name = cfg.name
        self.on_reading = on_reading
        self.clock = clock
        self.pin_factory = pin_factory
        self.sample_interval_s = sample_interval_s
        self.cf1_window_s = cf1_window_s
        self._retry = Backoff(retry_s, max(retry_s, PIN_RETRY_MAX_S), jitter=0.0)
        debounce_ns = int(cfg.debounce_ms * 1_000_000)
        self.power = PulsePower(joules_per_pulse(
            joules_per_pulse=cfg.joules_per_pulse, pulses_per_kwh=cfg.pulses_per_kwh,
            watts_per_hz=cfg.watts_per_hz), debounce_ns=debounce_ns)
        self.cf1: Cf1Meter | None = None
        if cfg.cf1_pin is not None:
            self.cf1 = Cf1Meter(
                amps_per_hz=float(cfg.calibration.get("amps_per_hz", HLW8012_AMPS_PER_HZ)),
                volts_per_hz=float(cfg.calibration.get("volts_per_hz", HLW8012_VOLTS_PER_HZ)),
                debounce_ns=debounce_ns)
        self.errors: Counter[str] = Counter()
        self.readings = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self._devices: list[Any] = []
        self._sel: Any = None
        self._cf1_switch_ns = 0
        self._stop = asyncio.Event()
        self._last_reading_boot_ns: int | None = None

    # -- pins ------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return bool(self._devices)

    def open(self) -> bool:
        """Claim the pins; False (counted, logged) when a pin cannot be had."""
        if self._devices:
            return True
        from gpiozero import DigitalInputDevice, DigitalOutputDevice

        opened: list[Any] = []
        try:
            kw = {} if self.pin_factory is None else {"pin_factory": self.pin_factory}
            cf = DigitalInputDevice(self.cfg.pin, pull_up=True, **kw)
            opened.append(cf)
            cf.when_activated = self._on_cf
            if self.cf1 is not None:
                cf1 = DigitalInputDevice(self.cfg.cf1_pin, pull_up=True, **kw)
                opened.append(cf1)
                cf1.when_activated = self._on_cf1
                if self.cfg.sel_pin is not None:
                    self._sel = DigitalOutputDevice(self.cfg.sel_pin, **kw)
                    opened.append(self._sel)
                    self._select(self.cf1.mode)
        except Exception as exc:  # noqa: BLE001 - any GPIO failure is a counted meter error
            for device in opened:
                device.close()
            self._sel = None
            self.errors["pin_error"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("pulse_pin_error", meter=self.name, error=self.last_error,
                      retry_in_s=self._retry.base_delay_s)
            return False
        self._devices = opened
        self._retry.reset()
        self._cf1_switch_ns = self.clock.boottime_ns()
        log.info("pulse_open", meter=self.name, pin=str(self.cfg.pin),
                 cf1_pin=None if self.cf1 is None else str(self.cfg.cf1_pin))
        return True

    def close(self) -> None:
        for device in self._devices:
            try:
                device.close()
            except Exception:
                log.exception("pulse_close_failed", meter=self.name)
        self._devices = []
        self._sel = None

    def _on_cf(self) -> None:
        t_ns = self.clock.boottime_ns()
        with self._lock:
            self.power.pulse(t_ns)

    def _on_cf1(self) -> None:
        t_ns = self.clock.boottime_ns()
        with self._lock:
            assert self.cf1 is not None
            self.cf1.pulse(t_ns)

    def _select(self, mode: Cf1Mode) -> None:
        if self._sel is not None:
            high = (mode == "current") == self.cfg.sel_current_high
            self._sel.value = high

    # -- sampling ----------------------------------------------------------------

    def tick(self) -> Reading | None:
        """Sample now; hand the reading (if power is known yet) to ``on_reading``."""
        real_ns, boot_ns = clock_pair(self.clock)  # one offset for all stamps (timesource)
        with self._lock:
            sample = self.power.sample(boot_ns)
            voltage = current = None
            if self.cf1 is not None:
                if (self._sel is not None
                        and boot_ns - self._cf1_switch_ns >= self.cf1_window_s * 1e9):
                    mode: Cf1Mode = "voltage" if self.cf1.mode == "current" else "current"
                    self.cf1.select(mode)
                    self._select(mode)
                    self._cf1_switch_ns = boot_ns
                voltage, current = self.cf1.voltage_v, self.cf1.current_a
        if sample.power_w is None:
            return None
        apparent = voltage * current if voltage is not None and current is not None else None
        factor = (sample.power_w / apparent) if apparent else None
        reading = Reading(meter=self.name, t_ns=real_ns, t_boot_ns=boot_ns,
                          power_w=sample.power_w, voltage_v=voltage, current_a=current,
                          apparent_va=apparent, power_factor=factor, energy_j=sample.energy_j,
                          tags=dict(self.cfg.tags))
        self.readings += 1
        self._last_reading_boot_ns = boot_ns
        try:
            self.on_reading(reading)
        except Exception:
            self.errors["consumer"] += 1
            log.exception("pulse_consumer_failed", meter=self.name)
        return reading

    async def run(self) -> None:
        """Claim the pins (retrying), then tick on a steady cadence until stopped."""
        self._stop.clear()
        try:
            while not self._stop.is_set():
                if not self.open():
                    await self._sleep(self._retry.next_delay())
                    continue
                interval_ns = int(self.sample_interval_s * 1e9)
                next_ns = self.clock.boottime_ns() + interval_ns
                while not self._stop.is_set():
                    delay_ns = next_ns - self.clock.boottime_ns()
                    if delay_ns > 0:
                        await self._sleep(delay_ns / 1e9)
                        continue
                    self.tick()
                    # steady cadence: skip missed ticks instead of bursting
                    next_ns += max(1, -delay_ns // interval_ns + 1) * interval_ns
        finally:
            self.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, Any]:
        age = None
        if self._last_reading_boot_ns is not None:
            age = round((self.clock.boottime_ns() - self._last_reading_boot_ns) / 1e9, 3)
        with self._lock:
            out: dict[str, Any] = {
                "driver": "pulse", "open": self.is_open, "pulses": self.power.pulses,
                "bounces": self.power.bounces + (self.cf1.bounces if self.cf1 else 0),
                "readings": self.readings, "last_reading_age_s": age,
                "errors": dict(self.errors), "energy_j": self.power.energy_j,
            }
        if self.last_error:
            out["last_error"] = self.last_error
        return out
