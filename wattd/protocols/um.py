"""RDTech UM24C / UM25C / UM34C USB meters over Bluetooth serial (SPEC 8.2).

Pure. The host sends one byte, ``0xF0``; the meter answers a 130-byte frame,
big-endian: model, voltage, current, power, temperature, ..., the threshold
recording's energy (mWh) and duration (s). The UM25C gives voltage and
current one decimal finer than the others. The frame has no checksum: a frame
is accepted when it is whole and starts with a known model; a short frame
followed by silence, or an unknown model, is dropped and counted.
"""

from __future__ import annotations

from wattd.protocols.base import DecodeCounters, Event, SerialSettings
from wattd.protocols.plausible import RangesLike
from wattd.protocols.polled import (
    DC_PLAUSIBLE,
    J_PER_WH,
    CounterTracker,
    count_error,
    implausible,
    measurement,
    plausible_of,
)

REQUEST = b"\xf0"
FRAME_BYTES = 130
SERIAL = SerialSettings(baudrate=9600)
# model -> (volts per count, amps per count)
MODELS = {0x0963: ("UM24C", 0.01, 0.001), 0x09C9: ("UM25C", 0.001, 0.0001),
          0x0D4C: ("UM34C", 0.01, 0.001)}
MODEL_BY_NAME = {name: code for code, (name, _, _) in MODELS.items()}
_MODEL_PREFIXES = {code.to_bytes(2, "big") for code in MODELS}


def encode_frame(model: str, *, voltage_v: float, current_a: float, power_w: float,
                 temperature_c: int = 25, energy_mwh: int = 0, duration_s: int = 0) -> bytes:
    """The 130-byte answer a ``model`` meter sends (simulator, tests)."""
    code = MODEL_BY_NAME[model]
    _, v_unit, i_unit = MODELS[code]
    out = bytearray(FRAME_BYTES)
    out[0:2] = code.to_bytes(2, "big")
    out[2:4] = max(0, min(0xFFFF, round(voltage_v / v_unit))).to_bytes(2, "big")
    out[4:6] = max(0, min(0xFFFF, round(current_a / i_unit))).to_bytes(2, "big")
    out[6:10] = max(0, min(0xFFFFFFFF, round(power_w * 1000))).to_bytes(4, "big")
    out[10:12] = max(0, min(0xFFFF, temperature_c)).to_bytes(2, "big")
    out[106:110] = (energy_mwh % (1 << 32)).to_bytes(4, "big")
    out[112:116] = (duration_s % (1 << 32)).to_bytes(4, "big")
    out[128:130] = b"\xff\xf1"  # the frame's usual trailer (not checked)
    return bytes(out)


class UMDecoder:
    """A UM meter. Polled (``start_poll``...) or, for a capture, fed a stream in
    which every 130-byte frame starting with a known model is decoded."""

    driver = "um"

    def __init__(self, plausible: RangesLike | None = None) -> None:
        self.plausible = plausible_of(plausible, DC_PLAUSIBLE)
        self.counters = DecodeCounters()
        self.counter = CounterTracker()
        self.model: str | None = None
        self._buf = bytearray()
        self._awaiting = False
        self._polling = False
        self._sent = False

    # ------------------------------------------------------------------ polled
    def start_poll(self) -> None:
        self._buf.clear()
        self._polling = True
        self._sent = False
        self._awaiting = False

    def next_request(self) -> bytes | None:
        if self._polling and not self._sent:
            self._sent = True
            self._awaiting = True
            return REQUEST
        self._awaiting = False
        return None

    def reply_pending(self) -> bool:
        return self._awaiting

    def reply_timeout(self, t_ns: int) -> list[Event]:
        got = len(self._buf)
        self._buf.clear()
        self._awaiting = False
        if got:
            return [count_error(self.counters, self.driver, "short_frame",
                                f"{got} of {FRAME_BYTES} bytes, then silence", t_ns)]
        return [count_error(self.counters, self.driver, "no_answer", "no frame after 0xF0",
                            t_ns)]

    def poll_request(self) -> bytes | None:
        return REQUEST

    # ------------------------------------------------------------------ bytes
    def feed(self, data: bytes, t_ns: int) -> list[Event]:
        if self._polling:
            if not self._awaiting:
                self.counters.skipped_bytes += len(data)
                return []
            self._buf += data
            if len(self._buf) < 2:
                return []
            if bytes(self._buf[:2]) not in _MODEL_PREFIXES:
                self._awaiting = False
                detail = f"unknown model {bytes(self._buf[:2]).hex()}"
                self.counters.skipped_bytes += len(self._buf)
                self._buf.clear()
                return [count_error(self.counters, self.driver, "unknown_model", detail, t_ns)]
            if len(self._buf) < FRAME_BYTES:
                return []
            frame = bytes(self._buf[:FRAME_BYTES])
            self.counters.skipped_bytes += len(self._buf) - FRAME_BYTES
            self._buf.clear()
            self._awaiting = False
            return [self._decode(frame, t_ns)]
        return self._scan(data, t_ns)

    def _scan(self, data: bytes, t_ns: int) -> list[Event]:
        buf = self._buf
        buf += data
        events: list[Event] = []
        while len(buf) >= 2:
            if bytes(buf[:2]) not in _MODEL_PREFIXES:
                self.counters.skipped_bytes += 1
                del buf[:1]
                continue
            if len(buf) < FRAME_BYTES:
                break
            events.append(self._decode(bytes(buf[:FRAME_BYTES]), t_ns))
            del buf[:FRAME_BYTES]
        return events

    def bytes_pending(self) -> int:
        return FRAME_BYTES - len(self._buf) if self._buf else 0

    def flush(self, t_ns: int) -> list[Event]:
        if not self._buf:
            return []
        got = len(self._buf)
        self.counters.skipped_bytes += got
        self._buf.clear()
        return [count_error(self.counters, self.driver, "short_frame",
                            f"{got} of {FRAME_BYTES} bytes when the stream ended", t_ns)]

    # ------------------------------------------------------------------ values
    def _decode(self, frame: bytes, t_ns: int) -> Event:
        name, v_unit, i_unit = MODELS[int.from_bytes(frame[0:2], "big")]
        voltage_v = int.from_bytes(frame[2:4], "big") * v_unit
        current_a = int.from_bytes(frame[4:6], "big") * i_unit
        power_w = int.from_bytes(frame[6:10], "big") / 1000
        problem = implausible(self.plausible, voltage_v, current_a, power_w)
        if problem:
            return count_error(self.counters, self.driver, "implausible", problem, t_ns)
        self.model = name
        energy_mwh = int.from_bytes(frame[106:110], "big")
        energy_j = self.counter.update(energy_mwh * J_PER_WH / 1000)
        self.counters.frames_ok += 1
        return measurement(t_ns=t_ns, frame_bytes=FRAME_BYTES, power_w=power_w,
                           voltage_v=voltage_v, current_a=current_a, energy_j=energy_j)
