"""BL0940/BL0942 chip models: poll/answer, CF_CNT from integrated energy, and a
BL0942 answering polls over a real pseudo-terminal."""

from __future__ import annotations

import os
import select
import time

import pytest

from wattd.protocols.base import Measurement
from wattd.protocols.bl0942 import BL0942Decoder
from wattd.protocols.registry import get_driver
from wattd.simulator.chip_bl09xx import PolledChipModel
from wattd.simulator.meter import start_simulated_meter
from wattd.simulator.power_profile import ConstantPower
from wattd.simulator.pty_server import configure_raw


@pytest.mark.parametrize("driver", ["bl0940", "bl0942"])
def test_chip_answers_only_its_request_and_counts_energy(driver: str) -> None:
    chip = PolledChipModel(driver, ConstantPower(100.0), seed=1)
    decoder = get_driver(driver).make_decoder()
    request = decoder.poll_request()
    assert chip.receive(b"\x00\x12" + request[:1], 0.0) == []  # half a request: wait
    (first,) = chip.receive(request[1:], 0.0)
    assert chip.receive(b"\xaa\x58\x00", 0.5) == []  # not a request
    (second,) = chip.receive(b"\x01" + request, 10.0)
    events = decoder.feed(first, 0) + decoder.feed(second, 10_000_000_000)
    got = [e for e in events if isinstance(e, Measurement)]
    assert len(got) == 2
    assert got[1].power_w == pytest.approx(100.0, rel=1e-3)
    assert got[1].voltage_v == pytest.approx(230.0, abs=2.0)
    # 1000 J drawn in 10 s; the counter resolution is one CF count
    counts_per_j = decoder.references.energy / 3.6e6  # type: ignore[attr-defined]
    assert got[1].energy_j == pytest.approx(1000.0, abs=1.5 / counts_per_j)


def test_cf_cnt_wrap_in_the_model_is_continuous_energy_for_the_decoder() -> None:
    chip = PolledChipModel("bl0942", ConstantPower(3000.0), cf_start=0xFFFFFF - 3)
    decoder = BL0942Decoder()
    events = []
    for i in range(4):
        (answer,) = chip.receive(decoder.poll_request(), i * 10.0)
        events += decoder.feed(answer, i * 10_000_000_000)
    last = events[-1]
    assert isinstance(last, Measurement)
    assert last.pf_count is not None
    assert last.pf_count < 1000
    assert last.energy_j == pytest.approx(3000.0 * 30, rel=0.01)


def test_silent_chip_answers_nothing() -> None:
    chip = PolledChipModel("bl0942", ConstantPower(5.0))
    chip.silent = True
    assert chip.receive(b"\x58\xaa", 1.0) == []
    assert chip.polls == 1


def read_for(fd: int, seconds: float, want: int) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while len(data) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            data += os.read(fd, 256)
    return data


def test_bl0942_poll_and_answer_over_a_real_pty() -> None:
    server = start_simulated_meter("bl0942", power_w=60.0, address=1, seed=3)
    try:
        fd = os.open(server.port_path, os.O_RDWR | os.O_NOCTTY)
        try:
            configure_raw(fd, get_driver("bl0942").serial)
            decoder = get_driver("bl0942").make_decoder(address=1)
            assert decoder.poll_request() == b"\x59\xaa"
            # the chip at address 1 ignores a poll for address 0
            os.write(fd, b"\x58\xaa")
            assert read_for(fd, 0.3, 23) == b""
            readings: list[Measurement] = []
            for _ in range(3):
                os.write(fd, decoder.poll_request())
                answer = read_for(fd, 5.0, 23)
                assert len(answer) == 23
                readings += [e for e in decoder.feed(answer, time.time_ns())
                             if isinstance(e, Measurement)]
            assert len(readings) == 3
            assert all(r.power_w == pytest.approx(60.0, rel=1e-3) for r in readings)
            assert readings[0].frequency_hz == pytest.approx(50.0)
            # unplugged then replugged: the port path comes back and answers again
            server.unplug()
            server.replug()
        finally:
            os.close(fd)
        fd = os.open(server.port_path, os.O_RDWR | os.O_NOCTTY)
        try:
            configure_raw(fd, get_driver("bl0942").serial)
            os.write(fd, b"\x59\xaa")
            assert len(read_for(fd, 5.0, 23)) == 23
        finally:
            os.close(fd)
    finally:
        server.stop()
