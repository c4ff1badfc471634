"""What BL0940 and BL0942 share: polled answers framed by 0x55, the checksum
that includes the read command, little-endian 24-bit fields, reference
scaling and the 24-bit CF_CNT energy counter (SPEC 1.2).

The decoder is pure: bytes and their arrival times in, measurements and
counted errors out. The transport sends :meth:`BL09xxDecoder.poll_request`
every ``poll_interval_s`` and feeds whatever comes back.

Framing rules (learned from ESPHome's bl0940/bl0942 components and Tasmota's
xnrg_14_bl09xx, which all resynchronise on the 0x55 header):

- bytes before a 0x55 header are skipped (counted in ``skipped_bytes``);
  real chips and adapters emit stray bytes before an answer (ESPHome issue
  #10136 shows ``00 E0 00`` before every BL0942 answer);
- a candidate whose checksum fails costs one byte: the search resumes at the
  next 0x55, so a good answer behind a torn one is never thrown away;
- a partial answer followed by silence longer than ``stale_gap_ns`` (the chip
  stopped mid-answer, or its answer was lost) is dropped as ``incomplete``
  when the next bytes arrive, instead of being glued to the next answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from wattd.errors import ConfigError
from wattd.protocols.base import DecodeCounters, DecodeError, Event, Measurement, SerialSettings
from wattd.protocols.plausible import Plausible, RangesLike

HEADER = 0x55
FULL_PACKET = 0xAA
CF_CNT_MODULO = 1 << 24
J_PER_KWH = 3.6e6
# A negative active power smaller than this is chip noise around no load
# (Tasmota's BL0940 sample reads -21 raw = -0.015 W at 0 A): reported as 0 W.
NEGATIVE_NOISE_W = 1.0


def checksum(read_command: int, body: bytes) -> int:
    """~(read command + every packet byte before the checksum) & 0xFF."""
    return ~(read_command + sum(body)) & 0xFF


def u24(frame: bytes, offset: int) -> int:
    return int.from_bytes(frame[offset:offset + 3], "little")


def s24(frame: bytes, offset: int) -> int:
    value = u24(frame, offset)
    return value - CF_CNT_MODULO if value & 0x800000 else value


def put_u24(buf: bytearray, offset: int, value: int) -> None:
    buf[offset:offset + 3] = (value % CF_CNT_MODULO).to_bytes(3, "little")


@dataclass(slots=True, frozen=True)
class References:
    """Raw value per unit: V = raw / voltage, I = raw / current, P = raw / power;
    ``energy`` is CF counts per kWh. A negative ``power`` flips the sign
    (boards with the shunt wired the other way read negative power)."""

    voltage: float
    current: float
    power: float
    energy: float

    KEYS: ClassVar[tuple[str, ...]] = ("voltage_reference", "current_reference",
                                       "power_reference", "energy_reference")

    def with_calibration(self, calibration: Mapping[str, float] | None,
                         driver: str) -> References:
        """Defaults overridden by a meter's ``calibration:`` mapping."""
        if not calibration:
            return self
        values = {"voltage": self.voltage, "current": self.current,
                  "power": self.power, "energy": self.energy}
        for key, value in calibration.items():
            if key not in self.KEYS:
                raise ConfigError(f"driver {driver} has no calibration key {key!r}; "
                                  f"known: {', '.join(self.KEYS)}", key=f"calibration.{key}")
            number = float(value)
            if number == 0 or not math.isfinite(number):  # cannot scale
                raise ConfigError("must be a non-zero number", key=f"calibration.{key}")
            values[key.removesuffix("_reference")] = number
        return References(**values)


@dataclass(slots=True, frozen=True)
class Layout:
    """Where the fields sit in one answer (offsets include the header byte)."""

    frame_len: int
    i_rms: int
    v_rms: int
    watt: int
    cf_cnt: int
    freq_period: int | None  # 16-bit period in us (BL0942), None when absent


class BL09xxDecoder:
    """Decoder for one polled Belling chip; subclasses give layout and defaults."""

    DRIVER: ClassVar[str] = "bl09xx"
    LAYOUT: ClassVar[Layout]
    DEFAULT_REFERENCES: ClassVar[References]
    READ_COMMAND: ClassVar[int]
    SERIAL: ClassVar[SerialSettings] = SerialSettings(4800)
    ADDRESSABLE: ClassVar[bool] = False

    def __init__(self, calibration: Mapping[str, float] | None = None, *,
                 address: int = 0, plausible: RangesLike | None = None,
                 byte_time_ns: int | None = None,
                 stale_gap_ns: int | None = None) -> None:
        """``byte_time_ns``: wire time of one byte (default: 4800 8N1); a frame that
        ends before the end of a chunk is stamped that many ns per byte earlier."""
        self.driver: str = self.DRIVER
        if not 0 <= address <= 3:
            raise ConfigError("chip address must be 0..3", key="address")
        if address and not self.ADDRESSABLE:
            raise ConfigError(f"driver {self.driver} has no chip address", key="address")
        self.counters = DecodeCounters()
        self.references = self.DEFAULT_REFERENCES.with_calibration(calibration, self.driver)
        self.plausible = Plausible.of(plausible)
        self.byte_time_ns = (self.SERIAL.wire_time_ns(1) if byte_time_ns is None
                             else int(byte_time_ns))
        self.read_command = self.READ_COMMAND | address
        frame_wire_ns = self.byte_time_ns * self.LAYOUT.frame_len
        # Inside one answer bytes follow each other within a few ms (adapters batch
        # up to 16 ms); a longer silence means the rest of a partial answer is lost.
        self.stale_gap_ns = (stale_gap_ns if stale_gap_ns is not None
                             else max(100_000_000, 2 * frame_wire_ns))
        self.counter_resets = 0
        self._buf = bytearray()
        self._last_feed_ns: int | None = None
        self._cf_last: int | None = None
        self._cf_last_t_ns = 0
        self._cf_total = 0

    # -- Decoder protocol -------------------------------------------------

    def poll_request(self) -> bytes:
        """Read command then 0xAA: "send the full packet"."""
        return bytes((self.read_command, FULL_PACKET))

    def feed(self, data: bytes, t_ns: int) -> list[Event]:
        """Add bytes whose last one arrived at ``t_ns``; return what completed."""
        events: list[Event] = []
        if (self._buf and self._last_feed_ns is not None
                and t_ns - self._last_feed_ns > self.stale_gap_ns):
            events.append(self._error("incomplete", f"{len(self._buf)} bytes of an answer, "
                                      "then silence", self._last_feed_ns))
            self.counters.skipped_bytes += len(self._buf)
            self._buf.clear()
        self._last_feed_ns = t_ns
        buf = self._buf
        buf += data
        frame_len = self.LAYOUT.frame_len
        while buf:
            start = buf.find(HEADER)
            if start < 0:
                self.counters.skipped_bytes += len(buf)
                buf.clear()
                break
            if start:
                self.counters.skipped_bytes += start
                del buf[:start]
            if len(buf) < frame_len:
                break
            frame = bytes(buf[:frame_len])
            end_t_ns = t_ns - self.byte_time_ns * (len(buf) - frame_len)
            expected = checksum(self.read_command, frame[:-1])
            if frame[-1] != expected:
                events.append(self._error("checksum", f"0x{frame[-1]:02X} != 0x{expected:02X}",
                                          end_t_ns))
                self.counters.skipped_bytes += 1
                del buf[:1]
                continue
            del buf[:frame_len]
            events.append(self._decode(frame, end_t_ns))
        return events

    def bytes_pending(self) -> int:
        """Bytes still to come for the answer being received (0 when none has
        begun): the buffer, after ``feed``, is empty or starts at a header."""
        return self.LAYOUT.frame_len - len(self._buf) if self._buf else 0

    def flush(self, t_ns: int) -> list[Event]:
        """The port closed: a partial answer in the buffer will never complete."""
        self._last_feed_ns = None
        if not self._buf:
            return []
        error = self._error("incomplete", f"{len(self._buf)} bytes of an answer when the port "
                            "closed", t_ns)
        self.counters.skipped_bytes += len(self._buf)
        self._buf.clear()
        return [error]

    # -- internals ----------------------------------------------------------

    def _error(self, reason: str, detail: str, t_ns: int) -> DecodeError:
        self.counters.dropped[reason] += 1
        return DecodeError(reason, f"{self.driver}: {detail}", t_ns)

    def _decode(self, frame: bytes, t_ns: int) -> Event:
        layout, refs, plausible = self.LAYOUT, self.references, self.plausible
        raw_v = u24(frame, layout.v_rms)
        raw_i = u24(frame, layout.i_rms)
        raw_p = s24(frame, layout.watt)
        voltage_v = raw_v / refs.voltage
        current_a = raw_i / refs.current
        power_w = raw_p / refs.power
        if -NEGATIVE_NOISE_W < power_w < 0:
            power_w = 0.0
        problems = []
        for name, value in (("voltage_v", voltage_v), ("current_a", current_a),
                            ("power_w", power_w)):
            low, high = getattr(plausible, name)
            if not low <= value <= high:
                problems.append(f"{name}={value:.4g} outside [{low:g}, {high:g}]")
        if problems:
            hint = (" (negative power: current sense reversed? a negative power_reference "
                    "flips it; `wattd calibrate` derives one)") if power_w < 0 else ""
            return self._error("implausible", "; ".join(problems) + hint, t_ns)
        frequency_hz = None
        if layout.freq_period is not None:
            period = int.from_bytes(frame[layout.freq_period:layout.freq_period + 2], "little")
            frequency_hz = 1e6 / period if period else None
        cf_cnt = u24(frame, layout.cf_cnt)
        energy_j = self._energy(cf_cnt, t_ns)
        apparent_va = voltage_v * current_a
        power_factor = power_w / apparent_va if apparent_va > 0 else None
        self.counters.frames_ok += 1
        return Measurement(
            t_ns=t_ns, frame_bytes=layout.frame_len, power_w=power_w, voltage_v=voltage_v,
            current_a=current_a, apparent_va=apparent_va, power_factor=power_factor,
            energy_j=energy_j, pf_count=cf_cnt,
            status="no_load" if raw_p == 0 else "ok", frequency_hz=frequency_hz)

    def _energy(self, cf_cnt: int, t_ns: int) -> float:
        """Energy since the first answer, from CF_CNT modulo 2**24.

        A step the meter could not have made (more than the plausible maximum
        power for the elapsed time plus 2 s, or more than half the counter range
        when arrival times are unknown) is a chip reset or a corrupted counter:
        re-baseline there and count it, never add thousands of phantom kWh.
        """
        if self._cf_last is None:
            self._cf_last, self._cf_last_t_ns = cf_cnt, t_ns
            return 0.0
        delta = (cf_cnt - self._cf_last) % CF_CNT_MODULO
        elapsed_s = max(0, t_ns - self._cf_last_t_ns) / 1e9
        if elapsed_s > 0:
            max_w = max(abs(x) for x in self.plausible.power_w)
            limit = max_w * (elapsed_s + 2.0) / J_PER_KWH * abs(self.references.energy)
        else:
            limit = CF_CNT_MODULO / 2
        if delta > limit:
            self.counter_resets += 1
            delta = 0
        self._cf_last, self._cf_last_t_ns = cf_cnt, t_ns
        self._cf_total += delta
        return self._cf_total / abs(self.references.energy) * J_PER_KWH


def encode_answer(decoder: BL09xxDecoder, *, voltage_v: float, current_a: float,
                  power_w: float, cf_cnt: int, frequency_hz: float = 50.0) -> bytes:
    """The answer a chip with ``decoder``'s references would send (simulator, tests)."""
    layout, refs = decoder.LAYOUT, decoder.references
    frame = bytearray(layout.frame_len)
    frame[0] = HEADER
    put_u24(frame, layout.i_rms, max(0, round(current_a * refs.current)))
    put_u24(frame, layout.v_rms, max(0, round(voltage_v * refs.voltage)))
    raw_p = max(-(1 << 23), min((1 << 23) - 1, round(power_w * refs.power)))
    put_u24(frame, layout.watt, raw_p)
    put_u24(frame, layout.cf_cnt, cf_cnt)
    if layout.freq_period is not None and frequency_hz > 0:
        frame[layout.freq_period:layout.freq_period + 2] = (
            min(0xFFFF, round(1e6 / frequency_hz)).to_bytes(2, "little"))
    frame[-1] = checksum(decoder.read_command, bytes(frame[:-1]))
    return bytes(frame)
