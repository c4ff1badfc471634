"""What every decoder shares: the measurement record, the error record and counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

Status = Literal["ok", "no_load"]


@dataclass(slots=True, frozen=True)
class Measurement:
    """One decoded reading, before wall-clock stamping.

    ``t_ns`` is the estimated arrival time of the frame's *last* byte on the
    caller's clock (the clock of the ``t_ns`` passed to ``feed``). The source
    turns it into the stamp of the first byte leaving the meter (SPEC 7).
    """

    t_ns: int
    frame_bytes: int
    power_w: float | None
    voltage_v: float | None = None
    current_a: float | None = None
    apparent_va: float | None = None
    power_factor: float | None = None
    energy_j: float | None = None  # hardware counter energy since this decoder started
    pf_count: int | None = None  # raw pulse/CF counter where the chip has one
    status: Status = "ok"
    frequency_hz: float | None = None  # mains frequency where the chip measures it (BL0942)


@dataclass(slots=True, frozen=True)
class DecodeError:
    """A counted input error (never raised out of a decoder)."""

    reason: str  # counter name: checksum, check_byte, uncalibrated, state_error, implausible, ...
    detail: str = ""
    t_ns: int = 0


Event = Measurement | DecodeError


@dataclass(slots=True)
class DecodeCounters:
    frames_ok: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    skipped_bytes: int = 0

    def summary(self, driver: str) -> dict[str, object]:
        return {"driver": driver, "frames_ok": self.frames_ok,
                "dropped": dict(sorted(self.dropped.items())),
                "skipped_bytes": self.skipped_bytes}


@dataclass(slots=True, frozen=True)
class SerialSettings:
    baudrate: int
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1

    @property
    def bits_per_byte(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    def wire_time_ns(self, n_bytes: int) -> int:
        return n_bytes * self.bits_per_byte * 1_000_000_000 // self.baudrate


class Decoder(Protocol):
    """A pure decoder. ``feed`` never raises on bad bytes: it returns DecodeError events."""

    driver: str
    counters: DecodeCounters

    def feed(self, data: bytes, t_ns: int) -> list[Event]: ...

    def poll_request(self) -> bytes | None:
        """Bytes to send to ask the chip for one answer (polled chips), else None."""
        ...
