"""Which chip produced these bytes? Try every serial driver on a capture (pure).

Every registered serial driver decodes the whole capture, once per common
setting (the BL0942's four chip addresses: the address is part of its
checksum). A candidate is scored by:

- ``coverage``: the share of the capture's bytes that sit in frames whose
  checksum holds: near 1 for the right framing, near 0 for a wrong one
  (random bytes pass a one-byte checksum 1 time in 256 at best);
- ``checksum_hit_rate``: frames whose checksum holds / frames tried;
- ``plausible_rate``: of those frames, the share whose values are
  plausible (this separates chips that share a frame: a CSE7766 frame read
  as an HLW8032 gives 1.88 x the voltage).

Best first: coverage, then plausibility, then fewer assumptions (drivers in
``PREFERENCE`` order: the HLW8032, the most common chip of this class, before the
CSE7766 whose frames are the same bytes, and the named chip before a preset of it).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wattd.errors import ConfigError
from wattd.protocols.base import Decoder, Measurement
from wattd.protocols.registry import DRIVERS, DriverSpec

BAD_FRAMING = ("checksum",)  # a frame candidate whose checksum failed
CONTENT_DROPS = ("implausible", "uncalibrated", "state_error")  # checksum held, values not
PREFERENCE = ("hlw8032", "cse7766", "bl0942", "bl0940", "gb202")
MIN_FRAMES = 3
MIN_COVERAGE = 0.5


@dataclass(slots=True)
class Candidate:
    driver: str
    settings: dict[str, int | str] = field(default_factory=dict)
    frames_checked: int = 0  # checksum held
    frames_failed: int = 0  # checksum or framing failed
    frames_ok: int = 0  # checksum held and values plausible
    frame_bytes: int = 0
    total_bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    median_voltage_v: float | None = None
    median_power_w: float | None = None
    median_current_a: float | None = None

    @property
    def checksum_hit_rate(self) -> float:
        tried = self.frames_checked + self.frames_failed
        return self.frames_checked / tried if tried else 0.0

    @property
    def coverage(self) -> float:
        return (min(1.0, self.frames_checked * self.frame_bytes / self.total_bytes)
                if self.total_bytes else 0.0)

    @property
    def plausible_rate(self) -> float:
        return self.frames_ok / self.frames_checked if self.frames_checked else 0.0

    @property
    def decodes(self) -> bool:
        return self.frames_checked >= MIN_FRAMES and self.coverage >= MIN_COVERAGE

    def label(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.driver} {extra}".strip()

    def as_dict(self) -> dict[str, object]:
        return {
            "driver": self.driver, "settings": dict(self.settings), "decodes": self.decodes,
            "coverage": round(self.coverage, 4),
            "checksum_hit_rate": round(self.checksum_hit_rate, 4),
            "plausible_rate": round(self.plausible_rate, 4),
            "frames_checked": self.frames_checked, "frames_failed": self.frames_failed,
            "frames_ok": self.frames_ok, "dropped": dict(sorted(self.dropped.items())),
            "median_voltage_v": _round(self.median_voltage_v),
            "median_current_a": _round(self.median_current_a),
            "median_power_w": _round(self.median_power_w),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _variants(spec: DriverSpec) -> list[tuple[dict[str, int | str], Decoder]]:
    """One decoder per common setting of this driver."""
    if spec.polled:
        try:
            spec.make_decoder(address=1)
        except ConfigError:
            pass  # this chip has no address
        else:
            return [({"address": address}, spec.make_decoder(address=address))
                    for address in range(4)]
    return [({}, spec.make_decoder())]


def _run(spec: DriverSpec, settings: dict[str, int | str], decoder: Decoder,
         reads: Sequence[tuple[int, bytes]]) -> Candidate:
    good: list[Measurement] = []
    for t_ns, data in reads:
        good += [e for e in decoder.feed(data, t_ns) if isinstance(e, Measurement)]
    flush = getattr(decoder, "flush", None)
    if flush is not None:
        flush(reads[-1][0] if reads else 0)
    counters = decoder.counters
    dropped = dict(counters.dropped)
    failed = sum(dropped.get(reason, 0) for reason in BAD_FRAMING)
    content = sum(dropped.get(reason, 0) for reason in CONTENT_DROPS)
    candidate = Candidate(
        driver=spec.name, settings=settings, frames_checked=counters.frames_ok + content,
        frames_failed=failed, frames_ok=counters.frames_ok, frame_bytes=spec.frame_bytes,
        total_bytes=sum(len(data) for _, data in reads), dropped=dropped)

    def median(values: Iterable[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    candidate.median_voltage_v = median(m.voltage_v for m in good)
    candidate.median_current_a = median(m.current_a for m in good)
    candidate.median_power_w = median(m.power_w for m in good)
    return candidate


def _rank(candidate: Candidate) -> tuple[float, float, int]:
    order = (PREFERENCE.index(candidate.driver) if candidate.driver in PREFERENCE
             else len(PREFERENCE))
    return (-round(candidate.coverage, 2), -round(candidate.plausible_rate, 2), order)


def identify(reads: Iterable[tuple[int, bytes]],
             drivers: Iterable[str] | None = None) -> list[Candidate]:
    """Every driver (and setting) tried on ``reads`` ((t_ns, bytes) in order), best first."""
    chunks = list(reads)
    names = list(drivers) if drivers is not None else sorted(DRIVERS)
    candidates = [_run(DRIVERS[name], settings, decoder, chunks)
                  for name in names
                  for settings, decoder in _variants(DRIVERS[name])]
    candidates.sort(key=_rank)
    # One line per driver: keep its best setting (the others are noise).
    seen: set[str] = set()
    best: list[Candidate] = []
    for candidate in candidates:
        if candidate.driver not in seen:
            seen.add(candidate.driver)
            best.append(candidate)
    return best
