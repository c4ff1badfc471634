"""Microchip MCP39F511N dual-channel power monitor over its USB serial bridge (SPEC 8.1).

Pure: requests built here, reply bytes in, measurements and counted errors out.

Frames (host -> meter): ``0xA5``, total frame length, commands, checksum (sum
of every preceding byte & 0xFF). One poll is two register reads: the output
block 0x0002..0x001D (status, voltage, frequency, power factors, currents,
active powers: 28 bytes) and, for the energy counter, the two import
active-energy accumulators 0x002E..0x003D (16 bytes). Reads are kept at or
under 32 data bytes, the chip family's read buffer. Replies: ``0x06`` (ACK),
total length (n + 3), n data bytes little-endian, checksum; ``0x15`` is a NAK
and ``0x51`` the chip's report of a request checksum failure.

A reply that is garbage, torn, a NAK or fails its checksum ends the poll with
a counted error: the energy read is not sent, and no reading is made.
"""

from __future__ import annotations

from collections.abc import Mapping

from wattd.protocols.base import DecodeCounters, Event, SerialSettings
from wattd.protocols.plausible import RangesLike
from wattd.protocols.polled import (
    MAINS_PLAUSIBLE,
    CounterTracker,
    count_error,
    implausible,
    measurement,
    plausible_of,
)

HEADER = 0xA5
ACK = 0x06
NAK = 0x15
CSFAIL = 0x51
SET_ADDRESS = 0x41
READ = 0x4E
WRITE = 0x4D
SERIAL = SerialSettings(baudrate=115200)

OUTPUT_ADDRESS = 0x0002
OUTPUT_BYTES = 28  # 0x0002 .. 0x001D
ENERGY_ADDRESS = 0x002E
ENERGY_BYTES = 16  # 0x002E .. 0x003D: import active energy ch1, ch2 (u64 each)
OUTPUT_REPLY_BYTES = OUTPUT_BYTES + 3
ENERGY_REPLY_BYTES = ENERGY_BYTES + 3
SIGN_BITS = {1: 1 << 4, 2: 1 << 6}  # system status: 1 = channel imports (power positive)

# Calibration keys (defaults: the factory range settings; the units follow the
# range registers, datasheet DS20005473). The energy unit is this module's
# reading of the datasheet: check it against `wattd calibrate` (firmware_notes/).
CALIBRATION_DEFAULTS = {"power_w_per_count": 0.01, "energy_j_per_count": 3.6}


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(commands: bytes) -> bytes:
    """A host frame around ``commands``: header, length, commands, checksum."""
    body = bytes((HEADER, len(commands) + 3)) + commands
    return body + bytes((checksum(body),))


def read_request(address: int, n_bytes: int) -> bytes:
    return frame(bytes((SET_ADDRESS, address >> 8 & 0xFF, address & 0xFF, READ, n_bytes)))


def encode_reply(data: bytes) -> bytes:
    """The chip's ACK reply carrying ``data`` (simulator, tests)."""
    body = bytes((ACK, len(data) + 3)) + data
    return body + bytes((checksum(body),))


def encode_output(*, voltage_v: float, frequency_hz: float, channels: Mapping[int, tuple[
        float, float, float]], power_w_per_count: float = 0.01) -> bytes:
    """The 28-byte output block: ``channels`` maps 1/2 to (power W, current A, PF)."""
    status = 0
    out = bytearray(OUTPUT_BYTES)
    out[4:6] = max(0, min(0xFFFF, round(voltage_v * 10))).to_bytes(2, "little")
    out[6:8] = max(0, min(0xFFFF, round(frequency_hz * 1000))).to_bytes(2, "little")
    for ch, (power_w, current_a, pf) in channels.items():
        if power_w >= 0:
            status |= SIGN_BITS[ch]
        pf_raw = max(-32768, min(32767, round(pf * 32768)))
        out[8 + 2 * (ch - 1):10 + 2 * (ch - 1)] = pf_raw.to_bytes(2, "little", signed=True)
        i_raw = max(0, min(0xFFFFFFFF, round(current_a * 10000)))
        out[12 + 4 * (ch - 1):16 + 4 * (ch - 1)] = i_raw.to_bytes(4, "little")
        p_raw = max(0, min(0xFFFFFFFF, round(abs(power_w) / power_w_per_count)))
        out[20 + 4 * (ch - 1):24 + 4 * (ch - 1)] = p_raw.to_bytes(4, "little")
    out[0:2] = status.to_bytes(2, "little")
    return bytes(out)


def encode_energy(counts: Mapping[int, int]) -> bytes:
    """The 16-byte energy block: import accumulator counts of channels 1 and 2."""
    out = bytearray(ENERGY_BYTES)
    for ch, value in counts.items():
        out[8 * (ch - 1):8 * ch] = (value % (1 << 64)).to_bytes(8, "little")
    return bytes(out)


class MCP39F511NDecoder:
    """One channel of an MCP39F511N. Two ways in:

    - polled (``start_poll`` / ``next_request`` / ``feed``): the daemon's path;
    - ``feed`` without a poll (a capture, ``wattd identify``/``replay``): every
      checksum-valid output-block reply in the stream is decoded.
    """

    driver = "mcp39f511n"

    def __init__(self, calibration: Mapping[str, float] | None = None, *, channel: int = 1,
                 plausible: RangesLike | None = None) -> None:
        if channel not in (1, 2):
            raise ValueError(f"MCP39F511N channel must be 1 or 2, not {channel}")
        cal = {**CALIBRATION_DEFAULTS, **(calibration or {})}
        self.power_w_per_count = cal["power_w_per_count"]
        self.energy_j_per_count = cal["energy_j_per_count"]
        self.channel = channel
        self.plausible = plausible_of(plausible, MAINS_PLAUSIBLE)
        self.counters = DecodeCounters()
        self.counter = CounterTracker()
        self._buf = bytearray()
        self._step = 0  # 0: no poll; 1: output reply awaited; 2: energy reply awaited
        self._output: tuple[int, bytes] | None = None  # (t_ns, data) of this poll's output

    # ------------------------------------------------------------------ polled
    def start_poll(self) -> None:
        self._buf.clear()
        self._output = None
        self._step = 0

    def next_request(self) -> bytes | None:
        if self._step == 0 and self._output is None:
            self._step = 1
            return read_request(OUTPUT_ADDRESS, OUTPUT_BYTES)
        if self._step == 1 and self._output is not None:
            self._step = 2
            return read_request(ENERGY_ADDRESS, ENERGY_BYTES)
        self._step = 3  # done (or failed)
        return None

    def reply_pending(self) -> bool:
        return self._step in (1, 2) and not (self._step == 1 and self._output is not None)

    def reply_timeout(self, t_ns: int) -> list[Event]:
        got = len(self._buf)
        self._buf.clear()
        self._step = 3
        if got:
            return [count_error(self.counters, self.driver, "incomplete",
                                f"{got} bytes of a reply, then silence", t_ns)]
        return [count_error(self.counters, self.driver, "no_answer",
                            "no reply to the register read", t_ns)]

    def poll_request(self) -> bytes | None:
        """The serial Decoder interface: what ``wattd capture`` sends to get output
        replies into a capture (``feed`` then scans them)."""
        return read_request(OUTPUT_ADDRESS, OUTPUT_BYTES)

    # ------------------------------------------------------------------ bytes
    def feed(self, data: bytes, t_ns: int) -> list[Event]:
        if self._step == 0 and self._output is None:
            return self._scan(data, t_ns)
        if not self.reply_pending():  # no reply awaited: stray bytes
            self.counters.skipped_bytes += len(data)
            return []
        self._buf += data
        buf = self._buf
        if not buf:
            return []
        lead = buf[0]
        if lead in (NAK, CSFAIL):
            self._step = 3
            reason = "nak" if lead == NAK else "request_checksum"
            self.counters.skipped_bytes += len(buf) - 1
            buf.clear()
            return [count_error(self.counters, self.driver, reason,
                                "the meter refused the request", t_ns)]
        want = OUTPUT_REPLY_BYTES if self._step == 1 else ENERGY_REPLY_BYTES
        if lead != ACK or (len(buf) >= 2 and buf[1] != want):
            self._step = 3
            detail = f"reply starts {bytes(buf[:2]).hex()}, not 06 {want:02x}"
            self.counters.skipped_bytes += len(buf)
            buf.clear()
            return [count_error(self.counters, self.driver, "garbage", detail, t_ns)]
        if len(buf) < want:
            return []
        reply = bytes(buf[:want])
        if len(buf) > want:
            self.counters.skipped_bytes += len(buf) - want
        buf.clear()
        if checksum(reply[:-1]) != reply[-1]:
            self._step = 3
            return [count_error(self.counters, self.driver, "checksum",
                                f"reply checksum {reply[-1]:02x}, computed "
                                f"{checksum(reply[:-1]):02x}", t_ns)]
        if self._step == 1:
            self._output = (t_ns, reply[2:-1])
            return []
        assert self._output is not None
        out_t_ns, out_data = self._output
        self._step = 3
        counts = int.from_bytes(reply[2 + 8 * (self.channel - 1):2 + 8 * self.channel], "little")
        # A counter still at 0 before it ever moved is most likely not accumulating
        # (energy accumulation disabled, SPEC 8.1): no counter energy, not a fake 0 J.
        energy_j = (None if counts == 0 and self.counter.last_j is None
                    else self.counter.update(counts * self.energy_j_per_count))
        return [self._decode(out_data, out_t_ns, energy_j)]

    def _scan(self, data: bytes, t_ns: int) -> list[Event]:
        """A capture: decode every checksum-valid output reply, resynchronising on ACK."""
        buf = self._buf
        buf += data
        events: list[Event] = []
        while True:
            at = buf.find(ACK)
            if at < 0:
                self.counters.skipped_bytes += len(buf)
                buf.clear()
                return events
            if at:
                self.counters.skipped_bytes += at
                del buf[:at]
            if len(buf) < 2:
                return events
            length = buf[1]
            if length not in (OUTPUT_REPLY_BYTES, ENERGY_REPLY_BYTES):
                self.counters.skipped_bytes += 1
                del buf[:1]
                continue
            if len(buf) < length:
                return events
            reply = bytes(buf[:length])
            if checksum(reply[:-1]) != reply[-1]:
                events.append(count_error(self.counters, self.driver, "checksum",
                                          "reply checksum fails", t_ns))
                self.counters.skipped_bytes += 1
                del buf[:1]
                continue
            del buf[:length]
            if length == OUTPUT_REPLY_BYTES:
                events.append(self._decode(reply[2:-1], t_ns, None))
            else:
                self.counters.frames_ok += 1  # an energy reply: valid, no reading alone

    def bytes_pending(self) -> int:
        return 0

    # ------------------------------------------------------------------ values
    def _decode(self, data: bytes, t_ns: int, energy_j: float | None) -> Event:
        ch = self.channel
        status = int.from_bytes(data[0:2], "little")
        voltage_v = int.from_bytes(data[4:6], "little") / 10
        frequency_hz = int.from_bytes(data[6:8], "little") / 1000
        pf = int.from_bytes(data[8 + 2 * (ch - 1):10 + 2 * (ch - 1)], "little",
                            signed=True) / 32768
        current_a = int.from_bytes(data[12 + 4 * (ch - 1):16 + 4 * (ch - 1)], "little") / 10000
        power_w = int.from_bytes(data[20 + 4 * (ch - 1):24 + 4 * (ch - 1)],
                                 "little") * self.power_w_per_count
        if not status & SIGN_BITS[ch] and power_w:
            power_w = -power_w  # exported
        problem = implausible(self.plausible, voltage_v, current_a, power_w, export_ok=True)
        if problem:
            return count_error(self.counters, self.driver, "implausible", problem, t_ns)
        self.counters.frames_ok += 1
        return measurement(t_ns=t_ns, frame_bytes=OUTPUT_REPLY_BYTES, power_w=power_w,
                           voltage_v=voltage_v, current_a=current_a, power_factor=abs(pf),
                           energy_j=energy_j, frequency_hz=frequency_hz)
