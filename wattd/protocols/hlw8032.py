"""HLW8032 / CSE7766 / CSE7759B streamed 24-byte frame decoder (SPEC 1.1). Pure.

Frame (big-endian): state, 0x5A, Vpar, Vreg, Ipar, Ireg, Ppar, Preg (3 bytes each),
data-update byte, PF pulse counter (2 bytes), checksum = sum(bytes 2..22) & 0xFF.

Byte accounting invariant (tested): every byte fed is either part of a frame
that passed its checksum (``frames_ok`` or dropped for its content:
``uncalibrated``, ``state_error``, ``implausible``), or counted in
``skipped_bytes``, or still pending in the buffer. ``checksum`` and
``check_byte`` drops consume nothing themselves: the decoder resyncs one byte
further, so a good frame hiding inside a bad one is never lost.
"""

from __future__ import annotations

import struct
from typing import Final

from wattd.protocols.base import DecodeCounters, DecodeError, Event, Measurement
from wattd.protocols.plausible import Plausible, RangesLike

FRAME_BYTES: Final = 24
CHECK_BYTE: Final = 0x5A
STATE_NORMAL: Final = 0x55
STATE_UNCALIBRATED: Final = 0xAA
STATE_FLAGS: Final = 0xF0  # high nibble F: the low nibble holds flags
FLAG_NO_LOAD: Final = 0x02  # power out of range: no load (valid frame)
# voltage (bit 3) or current (bit 2) out of range, parameter storage abnormal (bit 0)
FLAGS_FATAL: Final = 0x0D
UPDATE_VOLTAGE: Final = 0x40
UPDATE_CURRENT: Final = 0x20
UPDATE_POWER: Final = 0x10
UPDATE_PF_TOGGLE: Final = 0x80  # toggles each time the PF counter wraps past 65535
PF_MODULO: Final = 0x10000

# A partial frame followed by this much silence can never complete (the chip
# sends a frame's 24 bytes back to back in 55 ms): report it `incomplete`.
STALE_PARTIAL_NS: Final = 1_000_000_000
# Arrival jitter allowed before the low-load cap bites (USB adapters batch up
# to 16 ms): at constant power the cap must never pull a reading down.
CAP_SLACK_NS: Final = 25_000_000
# Counter plausibility: pulses between two frames may not exceed what the
# maximum plausible power produces over max(elapsed, this floor), plus 2.
PULSE_GUARD_FLOOR_NS: Final = 200_000_000

_FRAME = struct.Struct(">BB" + "BH" * 6 + "BHB")  # 17 items over exactly 24 bytes
_CHECK = b"\x5a"
# 1 where a byte can open a frame: 0x55, 0xAA or 0xF0..0xFF.
_IS_STATE: Final = bytes(1 if b in (STATE_NORMAL, STATE_UNCALIBRATED) or b >= STATE_FLAGS else 0
                         for b in range(256))


class HLW8032Decoder:
    """Decoder for one meter's stream. ``feed`` never raises on any input.

    ``kv``/``ki`` are the board coefficients (1.0 for the factory-calibrated
    CSE7766/CSE7759B). ``byte_time_ns`` is the wire time of one byte: when a
    read chunk holds bytes past a frame's end, that frame's last byte arrived
    earlier than the chunk by the remaining bytes' wire time.
    """

    __slots__ = (
        "_buf",
        "_byte_ns",
        "_current_a",
        "_energy_j",
        "_held_period_ns",
        "_held_power_w",
        "_i_hi",
        "_i_lo",
        "_in_sync",
        "_ki",
        "_kv",
        "_kvki",
        "_last_feed_ns",
        "_last_pulse_ns",
        "_p_hi",
        "_p_lo",
        "_pf_last",
        "_pf_toggle",
        "_prev_frame_ns",
        "_v_hi",
        "_v_lo",
        "_voltage_v",
        "counters",
        "driver",
    )

    def __init__(self, driver: str = "hlw8032", *, kv: float = 1.0, ki: float = 1.0,
                 plausible: RangesLike | None = None, byte_time_ns: int = 0) -> None:
        self.driver = driver
        self.counters = DecodeCounters()
        self._kv = float(kv)
        self._ki = float(ki)
        self._kvki = self._kv * self._ki
        ranges = Plausible.of(plausible)
        self._v_lo, self._v_hi = ranges.voltage_v
        self._i_lo, self._i_hi = ranges.current_a
        self._p_lo, self._p_hi = ranges.power_w
        self._byte_ns = int(byte_time_ns)
        self._buf = bytearray()
        self._in_sync = False
        self._last_feed_ns: int | None = None
        # Held values (the last refreshed ones) and counter state.
        self._voltage_v: float | None = None
        self._current_a: float | None = None
        self._held_power_w: float | None = None
        self._held_period_ns = 0.0
        self._pf_last: int | None = None
        self._pf_toggle = 0
        self._energy_j = 0.0
        self._last_pulse_ns = 0
        self._prev_frame_ns = 0

    def poll_request(self) -> bytes | None:
        return None  # the chip streams by itself

    # ------------------------------------------------------------------ framing
    def feed(self, data: bytes, t_ns: int) -> list[Event]:
        buf = self._buf
        if (not buf and len(data) == FRAME_BYTES and data[1] == CHECK_BYTE
                and _IS_STATE[data[0]] and sum(data[2:23]) & 0xFF == data[23]):
            # The usual read (the port wakes once per frame): one whole, aligned,
            # valid frame. Exactly what the general path below makes of it.
            self._last_feed_ns = t_ns
            self._in_sync = True
            return [self._decode(_FRAME.unpack(data), t_ns, data, 0)]
        events: list[Event] = []
        if buf and self._last_feed_ns is not None and t_ns - self._last_feed_ns > STALE_PARTIAL_NS:
            self._drop_pending(events, t_ns)
        self._last_feed_ns = t_ns
        if not data:
            return events
        buf += data
        n = len(buf)
        pos = 0
        counters = self.counters
        is_state = _IS_STATE
        while n - pos >= 2:
            if buf[pos + 1] == CHECK_BYTE and is_state[buf[pos]]:
                end = pos + FRAME_BYTES
                if end > n:
                    break  # a candidate frame still arriving
                if sum(buf[pos + 2:end - 1]) & 0xFF != buf[end - 1]:
                    counters.dropped["checksum"] += 1
                    events.append(DecodeError("checksum", buf[pos:end].hex(), t_ns))
                    counters.skipped_bytes += 1
                    pos += 1
                    self._in_sync = False
                    continue
                event = self._decode(_FRAME.unpack_from(buf, pos),
                                     t_ns - (n - end) * self._byte_ns, buf, pos)
                events.append(event)
                pos = end
                self._in_sync = True
                continue
            if self._in_sync:  # a frame was due exactly here
                counters.dropped["check_byte"] += 1
                events.append(DecodeError("check_byte", buf[pos:pos + 2].hex(), t_ns))
                self._in_sync = False
            # Skip to the next candidate: a 0x5A whose predecessor can be a state byte.
            j = buf.find(_CHECK, pos + 2)
            while j >= 0 and not is_state[buf[j - 1]]:
                j = buf.find(_CHECK, j + 1)
            if j < 0:
                # Keep the last byte if it may open a frame whose 0x5A is yet to come.
                keep_from = n - 1 if is_state[buf[n - 1]] else n
                counters.skipped_bytes += keep_from - pos
                pos = keep_from
                break
            counters.skipped_bytes += j - 1 - pos
            pos = j - 1
        if pos:
            del buf[:pos]
        return events

    def takes_whole(self, data: bytes) -> bool:
        """Would ``feed(data)`` decode exactly one whole, aligned frame (checksum good)
        and leave nothing buffered (``bytes_pending`` 0)? Lets a transport keep such a
        read to feed later, in order, with its own stamps: the result is the same."""
        return (not self._buf and len(data) == FRAME_BYTES and data[1] == CHECK_BYTE
                and _IS_STATE[data[0]] == 1 and sum(data[2:23]) & 0xFF == data[23])

    def bytes_pending(self) -> int:
        """Bytes still to come for the frame being received (0 when no frame is
        known to be under way). Lets a transport sleep through the frame's wire
        time instead of waking for every byte."""
        buf = self._buf
        if len(buf) >= 2 and buf[1] == CHECK_BYTE and _IS_STATE[buf[0]]:
            return max(0, FRAME_BYTES - len(buf))
        if len(buf) == 1 and self._in_sync and _IS_STATE[buf[0]]:
            return FRAME_BYTES - 1  # in step with the stream: a frame has begun
        return 0

    def flush(self, t_ns: int) -> list[Event]:
        """End of stream (EOF, port lost): a truncated trailing frame is `incomplete`."""
        events: list[Event] = []
        self._drop_pending(events, t_ns)
        self._in_sync = False
        return events

    def _drop_pending(self, events: list[Event], t_ns: int) -> None:
        buf = self._buf
        if len(buf) >= 2 and buf[1] == CHECK_BYTE and _IS_STATE[buf[0]]:
            self.counters.dropped["incomplete"] += 1
            events.append(DecodeError("incomplete", f"{len(buf)} of {FRAME_BYTES} bytes", t_ns))
        self.counters.skipped_bytes += len(buf)
        buf.clear()

    # ------------------------------------------------------------------ content
    def _drop(self, reason: str, buf: bytes | bytearray, pos: int, t_ns: int,
              why: str) -> DecodeError:
        self.counters.dropped[reason] += 1
        return DecodeError(reason, f"{why}: {buf[pos:pos + FRAME_BYTES].hex()}", t_ns)

    def _decode(self, f: tuple[int, ...], t_ns: int, buf: bytes | bytearray,
                pos: int) -> Event:
        (state, _check, vpar_hi, vpar_lo, vreg_hi, vreg_lo, ipar_hi, ipar_lo, ireg_hi, ireg_lo,
         ppar_hi, ppar_lo, preg_hi, preg_lo, update, pf_count, _sum) = f
        no_load = False
        if state != STATE_NORMAL:
            if state == STATE_UNCALIBRATED:
                return self._drop("uncalibrated", buf, pos, t_ns, "state 0xAA")
            if state & FLAGS_FATAL:
                return self._drop("state_error", buf, pos, t_ns, f"state 0x{state:02X}")
            no_load = state & FLAG_NO_LOAD != 0

        voltage = self._voltage_v
        if update & UPDATE_VOLTAGE:
            vreg = (vreg_hi << 16) | vreg_lo
            voltage = ((vpar_hi << 16) | vpar_lo) / vreg * self._kv if vreg else 0.0
            if not self._v_lo <= voltage <= self._v_hi:
                return self._drop("implausible", buf, pos, t_ns, f"voltage {voltage:.3g} V")

        current = self._current_a
        if no_load:
            current = 0.0
        elif update & UPDATE_CURRENT:
            ireg = (ireg_hi << 16) | ireg_lo
            current = ((ipar_hi << 16) | ipar_lo) / ireg * self._ki if ireg else 0.0
            if not self._i_lo <= current <= self._i_hi:
                return self._drop("implausible", buf, pos, t_ns, f"current {current:.3g} A")

        kvki = self._kvki
        ppar = (ppar_hi << 16) | ppar_lo
        joules_per_pulse = ppar * kvki * 1e-6
        refreshed_power: float | None = None
        if update & UPDATE_POWER and not no_load:
            preg = (preg_hi << 16) | preg_lo
            refreshed_power = ppar / preg * kvki if preg else -1.0
            if not self._p_lo <= refreshed_power <= self._p_hi:
                return self._drop("implausible", buf, pos, t_ns, f"power {refreshed_power:.4g} W")

        # PF counter: modulo 65536, bit 7 of the update byte toggles on each wrap.
        toggle = update & UPDATE_PF_TOGGLE
        pf_last = self._pf_last
        if pf_last is None:  # energy counts from the first frame this decoder saw
            self._last_pulse_ns = t_ns
            self._pf_toggle = toggle
        elif pf_count != pf_last or toggle != self._pf_toggle:
            pulses = (pf_count - pf_last) % PF_MODULO
            if (pf_count < pf_last) != (toggle != self._pf_toggle) or (
                    pulses > 2 and pulses > self._max_pulses(t_ns, joules_per_pulse)):
                # A counter jump (chip reset, corrupted frame): re-baseline, credit nothing.
                self._pf_last = pf_count
                self._pf_toggle = toggle
                self._prev_frame_ns = t_ns
                return self._drop("implausible", buf, pos, t_ns,
                                  f"PF counter jump {pf_last} -> {pf_count}")
            self._energy_j += pulses * joules_per_pulse
            self._last_pulse_ns = t_ns  # the latest the pulse can have been: a safe cap
            self._pf_toggle = toggle
        self._pf_last = pf_count
        self._prev_frame_ns = t_ns

        # Low-load rule: hold the last refreshed power, capped by
        # joules-per-pulse / time since the last pulse once that exceeds its period.
        power: float | None
        if no_load:
            power = 0.0
            self._held_power_w = None  # after no load, power is unknown until refreshed
        elif refreshed_power is not None:
            power = refreshed_power
            self._held_power_w = power
            self._held_period_ns = joules_per_pulse * 1e9 / power if power > 0 else 0.0
        else:
            power = self._held_power_w
            if power is not None:
                silence_ns = t_ns - self._last_pulse_ns - CAP_SLACK_NS
                if silence_ns > self._held_period_ns:
                    power = joules_per_pulse * 1e9 / silence_ns

        self._voltage_v = voltage
        self._current_a = current
        self.counters.frames_ok += 1
        if voltage is not None and current is not None:
            apparent: float | None = voltage * current
            factor = power / apparent if apparent and power is not None else None
        else:
            apparent = factor = None
        return Measurement(t_ns, FRAME_BYTES, power, voltage, current, apparent, factor,
                           self._energy_j, pf_count, "no_load" if no_load else "ok")

    def _max_pulses(self, t_ns: int, joules_per_pulse: float) -> float:
        """Most pulses the maximum plausible power yields since the previous frame."""
        if joules_per_pulse <= 0:
            return 2.0
        elapsed_ns = max(t_ns - self._prev_frame_ns, PULSE_GUARD_FLOOR_NS)
        return self._p_hi * elapsed_ns * 1e-9 / joules_per_pulse + 2


def encode_frame(*, state: int, vpar: int, vreg: int, ipar: int, ireg: int, ppar: int,
                 preg: int, update: int, pf: int) -> bytes:
    """The 24-byte frame a chip sends for these register values (the simulator's
    side of the decoder above). Registers are 24-bit, ``pf`` is taken modulo 65536."""
    body = b"".join(v.to_bytes(3, "big") for v in (vpar, vreg, ipar, ireg, ppar, preg))
    body += bytes((update,)) + (pf % PF_MODULO).to_bytes(2, "big")
    return bytes((state, CHECK_BYTE)) + body + bytes((sum(body) & 0xFF,))
