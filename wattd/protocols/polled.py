"""What the polled meters of SPEC 8 share (MCP39F511N, UM, hwmon, Shelly, Tasmota).

Pure: no I/O, no clock. A polled core is asked for its requests one at a time
(``next_request``), is fed the reply bytes as they arrive and answers with
measurements and counted errors, like the streamed decoders of SPEC 1. The
transport stamps a measurement at the midpoint of its request's send and its
reply's arrival (a serial reply: its arrival less its wire time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from wattd.protocols.base import DecodeCounters, DecodeError, Event, Measurement
from wattd.protocols.plausible import Plausible, RangesLike

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6

# SPEC 8: mains meters keep SPEC 1's 80-300 V; the DC meters (a Pi's 5 V input,
# USB-C PD up to 20 V) 0-30 V and 0-10 A, so at most 300 W.
MAINS_PLAUSIBLE = Plausible()
DC_PLAUSIBLE = Plausible(voltage_v=(0.0, 30.0), current_a=(0.0, 10.0), power_w=(0.0, 300.0))


class PolledCore(Protocol):
    """A request/reply protocol core (serial meters). ``start_poll`` begins one
    poll; ``next_request`` gives the bytes to send (None: the poll is over);
    ``feed`` takes reply bytes; ``reply_pending`` says more bytes are awaited;
    ``reply_timeout`` ends a reply that did not come (a counted error)."""

    driver: str
    counters: DecodeCounters

    def start_poll(self) -> None: ...

    def next_request(self) -> bytes | None: ...

    def feed(self, data: bytes, t_ns: int) -> list[Event]: ...

    def reply_pending(self) -> bool: ...

    def reply_timeout(self, t_ns: int) -> list[Event]: ...


def count_error(counters: DecodeCounters, driver: str, reason: str, detail: str,
                t_ns: int = 0) -> DecodeError:
    counters.dropped[reason] += 1
    return DecodeError(reason, f"{driver}: {detail}", t_ns)


def implausible(plausible: Plausible, voltage_v: float | None, current_a: float | None,
                power_w: float | None, *, export_ok: bool = False) -> str:
    """'' when every present value is inside its range (and finite), else why not.
    With ``export_ok`` (the MCP39F511N reads an exporting channel as negative
    power) power is checked on its magnitude."""
    problems = []
    if export_ok and power_w is not None:
        power_w = abs(power_w)
    for name, value in (("voltage_v", voltage_v), ("current_a", current_a),
                        ("power_w", power_w)):
        if value is None:
            continue
        low, high = getattr(plausible, name)
        if not math.isfinite(value) or not low <= value <= high:
            problems.append(f"{name}={value:.6g} outside [{low:g}, {high:g}]")
    return "; ".join(problems)


def plausible_of(ranges: RangesLike | None, default: Plausible) -> Plausible:
    return default if ranges is None else Plausible.of(ranges)


@dataclass(slots=True)
class CounterTracker:
    """The meter's own cumulative energy counter, as energy since this core's
    first reading (``Reading.energy_j``). A counter that goes backwards (the
    user reset the UM's recording, a plug rebooted) restarts from its new
    value: the energy already counted is kept, never subtracted."""

    base_j: float | None = None
    last_j: float | None = None
    total_j: float = 0.0
    resets: int = 0

    def update(self, counter_j: float | None) -> float | None:
        if counter_j is None or not math.isfinite(counter_j) or counter_j < 0:
            return None if self.last_j is None else self.total_j
        if self.last_j is None:
            self.base_j = self.last_j = counter_j
            return 0.0
        if counter_j >= self.last_j:
            self.total_j += counter_j - self.last_j
        else:
            self.resets += 1
            self.total_j += counter_j
        self.last_j = counter_j
        return self.total_j


def measurement(*, t_ns: int, frame_bytes: int, power_w: float,
                voltage_v: float | None = None, current_a: float | None = None,
                power_factor: float | None = None, energy_j: float | None = None,
                frequency_hz: float | None = None) -> Measurement:
    """A measurement with the apparent power (and power factor if absent) derived
    from V x I where both are known."""
    apparent_va = None
    if voltage_v is not None and current_a is not None:
        apparent_va = voltage_v * current_a
        if power_factor is None and apparent_va > 0:
            power_factor = power_w / apparent_va
    return Measurement(t_ns=t_ns, frame_bytes=frame_bytes, power_w=power_w,
                       voltage_v=voltage_v, current_a=current_a, apparent_va=apparent_va,
                       power_factor=power_factor, energy_j=energy_j,
                       status="no_load" if power_w == 0 else "ok", frequency_hz=frequency_hz)
