"""Models of the SPEC 8 serial meters: an MCP39F511N and a UM USB meter answering polls.

Pure (bytes and simulated time in, answers out), served on a pty by
``PtyMeterServer``. Each integrates its power source continuously into its
own energy counter (the MCP's import accumulator, the UM's mWh recording).
``silent`` makes a model stop answering; ``corrupt`` flips its next answer's
checksum (MCP) or cuts it short (UM).
"""

from __future__ import annotations

import math
import random

from wattd.protocols import mcp39f511n as mcp
from wattd.protocols import um
from wattd.simulator.power_profile import EnergyIntegrator, PowerSource


class MCP39F511NChipModel:
    """Answers register reads of the output block and the energy accumulators."""

    def __init__(self, power: PowerSource, *, channel: int = 1, voltage_v: float = 230.0,
                 power_factor: float = 0.95, frequency_hz: float = 50.0,
                 energy_j_per_count: float = 3.6, power_w_per_count: float = 0.01,
                 seed: int | None = 0) -> None:
        self.channel = channel
        self.voltage_v = voltage_v
        self.power_factor = power_factor
        self.frequency_hz = frequency_hz
        self.energy_j_per_count = energy_j_per_count
        self.power_w_per_count = power_w_per_count
        self.silent = False
        self.corrupt = False
        self.polls = 0
        self._energy = EnergyIntegrator(power)
        self._pending = bytearray()
        self._pointer = 0
        self._rng = random.Random(seed)  # noqa: S311 - simulation noise, not security

    @property
    def energy_j(self) -> float:
        return self._energy.energy_j

    def _registers(self, t_s: float) -> dict[int, bytes]:
        power = self._energy.power.power_at(t_s)
        current = power / (self.voltage_v * self.power_factor) if power else 0.0
        channels = {self.channel: (power, current, self.power_factor),
                    3 - self.channel: (0.0, 0.0, 0.0)}
        counts = math.floor(self._energy.energy_j / self.energy_j_per_count)
        return {
            mcp.OUTPUT_ADDRESS: mcp.encode_output(
                voltage_v=self.voltage_v, frequency_hz=self.frequency_hz, channels=channels,
                power_w_per_count=self.power_w_per_count),
            mcp.ENERGY_ADDRESS: mcp.encode_energy({self.channel: counts, 3 - self.channel: 0}),
        }

    def receive(self, data: bytes, t_s: float) -> list[bytes]:
        self._energy.advance(t_s)
        self._pending += data
        answers: list[bytes] = []
        buf = self._pending
        while True:
            at = buf.find(mcp.HEADER)
            if at < 0:
                buf.clear()
                return answers
            del buf[:at]
            if len(buf) < 2 or len(buf) < buf[1]:
                return answers
            frame = bytes(buf[:buf[1]])
            del buf[:len(frame)]
            if len(frame) < 4 or mcp.checksum(frame[:-1]) != frame[-1]:
                answers.append(bytes((mcp.CSFAIL,)))
                continue
            answers += self._execute(frame[2:-1], t_s)

    def _execute(self, commands: bytes, t_s: float) -> list[bytes]:
        i = 0
        while i < len(commands):
            op = commands[i]
            if op == mcp.SET_ADDRESS and i + 2 < len(commands):
                self._pointer = commands[i + 1] << 8 | commands[i + 2]
                i += 3
            elif op == mcp.READ and i + 1 < len(commands):
                n = commands[i + 1]
                block = self._registers(t_s).get(self._pointer)
                if block is None or n != len(block):
                    return [bytes((mcp.NAK,))]
                self.polls += 1
                if self.silent:
                    return []
                reply = mcp.encode_reply(block)
                if self.corrupt:
                    self.corrupt = False
                    reply = reply[:-1] + bytes(((reply[-1] + 1) & 0xFF,))
                return [reply]
            else:
                return [bytes((mcp.NAK,))]
        return [bytes((mcp.ACK,))]


class UMChipModel:
    """Answers each 0xF0 with a 130-byte frame of ``model``."""

    def __init__(self, power: PowerSource, *, model: str = "UM25C", voltage_v: float = 5.1,
                 seed: int | None = 0) -> None:
        self.model = model
        self.voltage_v = voltage_v
        self.silent = False
        self.corrupt = False
        self.polls = 0
        self._energy = EnergyIntegrator(power)
        self._t0: float | None = None

    @property
    def energy_j(self) -> float:
        return self._energy.energy_j

    def receive(self, data: bytes, t_s: float) -> list[bytes]:
        self._energy.advance(t_s)
        if self._t0 is None:
            self._t0 = t_s
        answers = []
        for byte in data:
            if byte != um.REQUEST[0]:
                continue  # other commands (screen, groups) change nothing here
            self.polls += 1
            if self.silent:
                continue
            power = self._energy.power.power_at(t_s)
            frame = um.encode_frame(
                self.model, voltage_v=self.voltage_v, current_a=power / self.voltage_v,
                power_w=power, energy_mwh=math.floor(self._energy.energy_j / 3.6),
                duration_s=int(t_s - self._t0))
            if self.corrupt:
                self.corrupt = False
                frame = frame[:60]
            answers.append(frame)
        return answers
