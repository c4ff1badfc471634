"""A model of a BL0940 / BL0942 chip: it answers polls, it does not stream.

Pure: bytes written by the host go in with the simulated time; answers come
out. What it reproduces:

- only a complete ``read command, 0xAA`` pair (with this chip's address) is
  answered; anything else on the line is ignored, as the chip does;
- energy is integrated continuously and CF_CNT counts it modulo 2**24
  (``cf_start`` lets a test begin just below the wrap);
- voltage ~230 V with small seeded noise, current from power / (V x PF),
  BL0942 mains period 20 ms (50 Hz);
- ``silent = True`` makes the chip stop answering (a wedged chip or a broken
  TX line) while the rest of the model keeps running.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from wattd.protocols.bl09xx import (
    CF_CNT_MODULO,
    J_PER_KWH,
    BL09xxDecoder,
    encode_answer,
)
from wattd.protocols.bl0940 import BL0940Decoder
from wattd.protocols.bl0942 import BL0942Decoder
from wattd.simulator.power_profile import EnergyIntegrator, PowerSource

CHIP_CLASSES: dict[str, type[BL09xxDecoder]] = {"bl0940": BL0940Decoder,
                                                 "bl0942": BL0942Decoder}
ANSWER_DELAY_S = 0.002  # the chip starts answering a couple of ms after the request


class PolledChipModel:
    """One BL09xx chip. ``receive(data, t_s)`` returns the answers due for these bytes."""

    def __init__(self, driver: str, power: PowerSource, *,
                 calibration: Mapping[str, float] | None = None, address: int = 0,
                 voltage_v: float = 230.0, voltage_noise_v: float = 0.3,
                 power_factor: float = 0.95, frequency_hz: float = 50.0,
                 cf_start: int = 0, seed: int | None = 0) -> None:
        # The decoder with the same references is the encoder's scale, so a wattd
        # configured like the simulator reads back exactly the simulated power.
        self.codec = CHIP_CLASSES[driver](calibration, address=address)
        self.driver = driver
        self.power = power
        self.voltage_v = voltage_v
        self.voltage_noise_v = voltage_noise_v
        self.power_factor = power_factor
        self.frequency_hz = frequency_hz
        self.silent = False
        self.polls = 0
        self.answers = 0
        self._energy = EnergyIntegrator(power)
        self._counts_per_j = abs(self.codec.references.energy) / J_PER_KWH
        self._cf_start = cf_start
        self._pending = bytearray()
        self._rng = random.Random(seed)  # noqa: S311 - simulation noise, not security

    @property
    def energy_j(self) -> float:
        return self._energy.energy_j

    def _advance(self, t_s: float) -> None:
        self._energy.advance(t_s)

    def answer_at(self, t_s: float) -> bytes:
        """The full packet the chip would send at ``t_s``."""
        self._advance(t_s)
        power = self.power.power_at(t_s)
        voltage = self.voltage_v + self._rng.gauss(0.0, self.voltage_noise_v)
        current = power / (voltage * self.power_factor) if voltage > 0 else 0.0
        self.answers += 1
        cf = int(self._cf_start + self._energy.energy_j * self._counts_per_j)
        return encode_answer(self.codec, voltage_v=voltage, current_a=current, power_w=power,
                             cf_cnt=cf % CF_CNT_MODULO,
                             frequency_hz=self.frequency_hz)

    def receive(self, data: bytes, t_s: float) -> list[bytes]:
        """Bytes from the host at ``t_s``; one answer per complete read request."""
        self._advance(t_s)
        self._pending += data
        answers: list[bytes] = []
        request = self.codec.poll_request()  # the host's request, as wattd encodes it
        while True:
            at = self._pending.find(request)
            if at < 0:
                del self._pending[:max(0, len(self._pending) - 1)]  # keep a half request
                break
            del self._pending[:at + 2]
            self.polls += 1
            if not self.silent:
                answers.append(self.answer_at(t_s + ANSWER_DELAY_S))
        return answers
