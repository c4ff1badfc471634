"""BL0940 / BL0942 decoders: real published answers, whole, byte by byte,
wrapped in garbage, torn, silent, wrapped counters, and fuzzed."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattd.errors import ConfigError
from wattd.protocols.base import DecodeError, Event, Measurement
from wattd.protocols.bl09xx import BL09xxDecoder, checksum, encode_answer
from wattd.protocols.bl0940 import BL0940Decoder
from wattd.protocols.bl0942 import BL0942Decoder
from wattd.protocols.plausible import Plausible

# Real BL0942 answers to "58 AA" from an ESPHome uart_debug log, with the stray
# bytes the adapter delivered before (and after) each answer:
# https://github.com/esphome/esphome/issues/10136
ESPHOME_10136_BL0942 = [
    "00 E0 00 55 00 00 00 65 BC 34 FB 29 01 00 00 00 00 00 00 36 4E 00 22 01 00 31",
    "00 00 00 55 25 00 00 33 BC 34 4E 2B 01 03 00 00 00 00 00 36 4E 00 22 01 00 E6",
    "00 F0 00 55 00 00 00 6E C5 34 C6 29 01 00 00 00 00 00 00 2E 4E 00 22 01 00 5C",
    "00 F8 00 C0 00 55 00 00 00 A1 C5 34 B4 28 01 00 00 00 00 00 00 2E 4E 00 22 01 00 3C",
    "00 F0 01 E8 00 55 00 00 00 58 BF 34 5A 2A 01 00 00 00 00 00 00 36 4E 00 22 01 00 DB 00 F0",
]
# Real BL0940 answers to "50 AA" quoted in Tasmota's xnrg_14_bl09xx.ino
# (arendst/Tasmota, tasmota/tasmota_xnrg_energy/xnrg_14_bl09xx.ino, Bl09XXDecode3940);
# the last one is annotated there as "U 7652864, I 29487/0, P 35223/0, C 171/0".
TASMOTA_BL0940 = [
    "55 F2 03 00 00 00 00 7E 02 00 D4 B0 72 AC 01 00 00 00 00 02 01 00 00 00 00 00 00 00 BA"
    " 01 00 FE 03 00 83",
    "55 88 02 00 49 00 00 FE 02 00 AF EF 71 D2 01 00 EB FF FF 49 01 00 00 00 00 02 00 00 CF"
    " 01 00 FE 03 00 9F",
    "55 B9 33 00 DE 45 00 94 02 00 CF E4 70 63 02 00 6C 4C 00 13 01 00 09 00 00 00 00 00 E4"
    " 01 00 FE 03 00 72",
    "55 B8 55 00 2F 73 00 D2 02 00 00 C6 74 F9 01 00 97 89 00 37 01 00 AB 00 00 2D 00 00 02"
    " 02 00 FE 03 00 6E",
]
# Real BL0942 payloads (a 40 W bulb on 230 V) quoted in the same Tasmota file
# (Bl09XXDecode42); the comment there drops the checksum byte, so it is recomputed
# here. Their WATT field is negative (the board's shunt is reversed: Tasmota issue
# #15374 made Tasmota take abs()).
TASMOTA_BL0942_PAYLOADS = [
    "55 A3 B9 00 9E 4C 36 93 43 00 F4 98 FF 99 00 00 16 4E 00 01 01 00",
    "55 AC B9 00 79 4D 36 C4 43 00 EF 98 FF 99 00 00 16 4E 00 01 01 00",
]


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def measurements(events: list[Event]) -> list[Measurement]:
    return [e for e in events if isinstance(e, Measurement)]


def values(events: list[Event]) -> list[Measurement]:
    """Measurements without their stamps (chunking moves stamps, not values)."""
    return [dataclasses.replace(m, t_ns=0) for m in measurements(events)]


def errors(events: list[Event]) -> list[DecodeError]:
    return [e for e in events if isinstance(e, DecodeError)]


def feed_bytewise(decoder: BL09xxDecoder, data: bytes) -> list[Event]:
    out: list[Event] = []
    for b in data:
        out += decoder.feed(bytes([b]), 0)
    return out


def test_published_bl0942_answers_whole_with_stray_bytes() -> None:
    decoder = BL0942Decoder()
    got: list[Measurement] = []
    for i, line in enumerate(ESPHOME_10136_BL0942):
        got += measurements(decoder.feed(hx(line), i * 5_000_000_000))
    assert len(got) == 5
    assert decoder.counters.frames_ok == 5
    assert not decoder.counters.dropped
    assert decoder.counters.skipped_bytes == 3 + 3 + 3 + 5 + 5 + 2
    first = got[0]
    assert first.voltage_v == pytest.approx(0x34BC65 / 15873.36)  # 217.73 V
    assert first.frequency_hz == pytest.approx(1e6 / 0x4E36)  # 49.95 Hz
    assert first.power_w == 0.0
    assert first.status == "no_load"
    assert got[1].power_w == pytest.approx(3 / 596)
    assert got[1].current_a == pytest.approx(0x25 / 251213.46)
    assert got[1].status == "ok"
    assert got[2].frequency_hz == pytest.approx(1e6 / 0x4E2E)


def test_published_bl0942_byte_by_byte_matches_whole() -> None:
    stream = b"".join(hx(x) for x in ESPHOME_10136_BL0942)
    whole = values(BL0942Decoder().feed(stream, 0))
    bytewise = values(feed_bytewise(BL0942Decoder(), stream))
    assert len(whole) == 5
    assert bytewise == whole


def test_published_bl0940_answers() -> None:
    decoder = BL0940Decoder()
    stream = b"".join(hx(x) for x in TASMOTA_BL0940)
    got = measurements(feed_bytewise(decoder, stream))
    assert len(got) == 4
    assert not decoder.counters.dropped
    last = got[-1]
    # Tasmota's own annotation of this frame: U 7652864, I 29487, P 35223, C 171.
    assert last.voltage_v == pytest.approx(7652864 / 33000)
    assert last.current_a == pytest.approx(29487 / 275000)
    assert last.power_w == pytest.approx(35223 / 1430)
    assert last.pf_count == 171
    assert last.power_factor == pytest.approx(0.9906, abs=1e-3)
    assert got[0].status == "no_load"
    # -21 raw (= -0.015 W at 0 A) is noise around no load: 0 W, not implausible.
    assert got[1].power_w == 0.0
    assert got[1].status == "ok"


def test_published_frames_wrapped_in_garbage() -> None:
    garbage = bytes(range(0x56, 0x80)) + b"\x00\xff\x12"  # no 0x55 in it
    decoder = BL0940Decoder()
    stream = garbage + b"".join(hx(x) + garbage for x in TASMOTA_BL0940)
    got = measurements(decoder.feed(stream, 0))
    assert len(got) == 4
    assert decoder.counters.skipped_bytes == len(garbage) * 5


def test_garbage_holding_a_fake_header_costs_one_checksum_error_not_the_frame() -> None:
    decoder = BL0942Decoder()
    good = hx(ESPHOME_10136_BL0942[1])[3:]
    events = decoder.feed(b"\x55\x01\x02" + good, 0)
    assert len(measurements(events)) == 1
    assert [e.reason for e in errors(events)] == ["checksum"]


def test_tasmota_bl0942_negative_power_needs_a_negative_reference() -> None:
    frames = b"".join(hx(p) + bytes([checksum(0x58, hx(p))]) for p in TASMOTA_BL0942_PAYLOADS)
    plain = BL0942Decoder()
    events = plain.feed(frames, 0)
    assert measurements(events) == []
    assert plain.counters.dropped["implausible"] == 2
    assert "power_reference" in errors(events)[0].detail
    flipped = BL0942Decoder({"power_reference": -596})
    got = measurements(flipped.feed(frames, 0))
    assert len(got) == 2
    assert got[0].power_w == pytest.approx(26380 / 596)  # 44.3 W for the "40 W" bulb
    assert got[0].voltage_v == pytest.approx(3558558 / 15873.36)
    assert got[0].pf_count == 153
    assert got[0].frequency_hz == pytest.approx(1e6 / 0x4E16)


def test_poll_request_and_address_in_checksum() -> None:
    assert BL0942Decoder().poll_request() == b"\x58\xaa"
    assert BL0942Decoder(address=3).poll_request() == b"\x5b\xaa"
    assert BL0940Decoder().poll_request() == b"\x50\xaa"
    # An answer checksummed for address 0 fails on a decoder polling address 2.
    answer = hx(ESPHOME_10136_BL0942[0])[3:]
    decoder = BL0942Decoder(address=2)
    assert measurements(decoder.feed(answer, 0)) == []
    assert decoder.counters.dropped["checksum"] == 1
    addressed = BL0942Decoder(address=2)
    frame = encode_answer(addressed, voltage_v=230, current_a=1, power_w=200, cf_cnt=5)
    assert len(measurements(BL0942Decoder(address=2).feed(frame, 0))) == 1


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"address": 4}, "address"),
    ({"calibration": {"kv": 1.88}}, "calibration.kv"),
    ({"calibration": {"power_reference": 0}}, "calibration.power_reference"),
])
def test_bad_settings_are_config_errors(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        BL0942Decoder(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


def test_bl0940_has_no_address() -> None:
    with pytest.raises(ConfigError):
        BL0940Decoder(address=1)


@pytest.mark.parametrize("cls", [BL0940Decoder, BL0942Decoder])
def test_roundtrip_with_calibration(cls: type[BL09xxDecoder]) -> None:
    decoder = cls({"voltage_reference": 16000, "energy_reference": 3000})
    frame = encode_answer(decoder, voltage_v=231.5, current_a=0.5, power_w=110.0, cf_cnt=10)
    (m,) = decoder.feed(frame, 0)
    assert isinstance(m, Measurement)
    assert m.voltage_v == pytest.approx(231.5, abs=1e-3)
    assert m.current_a == pytest.approx(0.5, abs=1e-4)
    assert m.power_w == pytest.approx(110.0, abs=0.01)
    assert m.energy_j == 0.0  # first answer is the baseline
    (m2,) = decoder.feed(encode_answer(decoder, voltage_v=231.5, current_a=0.5,
                                       power_w=110.0, cf_cnt=13), 1_000_000_000)
    assert isinstance(m2, Measurement)
    assert m2.energy_j == pytest.approx(3 / 3000 * 3.6e6)


def test_cf_cnt_wraps_at_24_bits() -> None:
    decoder = BL0942Decoder()
    frames = [encode_answer(decoder, voltage_v=230, current_a=10, power_w=2300, cf_cnt=c)
              for c in (0xFFFFF0, 0xFFFFFF, 0x000010)]
    got = [measurements(decoder.feed(f, i * 60_000_000_000))[0] for i, f in enumerate(frames)]
    assert got[2].energy_j == pytest.approx(0x20 / 3304.61 * 3.6e6)
    assert decoder.counter_resets == 0


def test_counter_reset_is_rebased_not_phantom_energy() -> None:
    decoder = BL0942Decoder()
    kw = {"voltage_v": 230.0, "current_a": 1.0, "power_w": 230.0}
    decoder.feed(encode_answer(decoder, cf_cnt=500_000, **kw), 0)
    (m,) = decoder.feed(encode_answer(decoder, cf_cnt=2, **kw), 1_000_000_000)
    assert isinstance(m, Measurement)
    assert m.energy_j == 0.0
    assert decoder.counter_resets == 1
    (m,) = decoder.feed(encode_answer(decoder, cf_cnt=5, **kw), 2_000_000_000)
    assert isinstance(m, Measurement)
    assert m.energy_j == pytest.approx(3 / 3304.61 * 3.6e6)


def test_implausible_reading_is_dropped_and_counted() -> None:
    decoder = BL0942Decoder(plausible=Plausible(voltage_v=(80, 300)))
    frame = encode_answer(decoder, voltage_v=0.4, current_a=0.1, power_w=1.0, cf_cnt=0)
    (event,) = decoder.feed(frame, 0)
    assert isinstance(event, DecodeError)
    assert event.reason == "implausible"
    assert decoder.counters.dropped["implausible"] == 1


def test_partial_answer_then_silence_is_incomplete_and_next_answer_decodes() -> None:
    decoder = BL0942Decoder()
    answer = encode_answer(decoder, voltage_v=230, current_a=0.02, power_w=3.0, cf_cnt=7)
    assert decoder.feed(answer[:10], 1_000_000_000) == []
    events = decoder.feed(answer, 2_000_000_000)  # next poll's answer, a second later
    assert [e.reason for e in errors(events)] == ["incomplete"]
    assert len(measurements(events)) == 1
    assert decoder.counters.skipped_bytes == 10


def test_late_answer_without_timing_resyncs_by_checksum() -> None:
    decoder = BL0942Decoder()
    answer = encode_answer(decoder, voltage_v=230, current_a=0.02, power_w=3.0, cf_cnt=7)
    events = decoder.feed(answer[:10] + answer, 0)
    assert len(measurements(events)) == 1
    assert decoder.counters.dropped["incomplete"] == 0


def test_stamp_is_the_last_byte_of_the_frame_not_of_the_chunk() -> None:
    decoder = BL0942Decoder()
    answer = encode_answer(decoder, voltage_v=230, current_a=0.02, power_w=3.0, cf_cnt=7)
    (m,) = decoder.feed(answer + b"\x00\x00", 10_000_000_000)
    assert isinstance(m, Measurement)
    assert m.t_ns == 10_000_000_000 - 2 * (10 * 1_000_000_000 // 4800)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([BL0940Decoder, BL0942Decoder]))
def test_fuzz_random_bytes_only_readings_or_counted_errors(
        data: bytes, cls: type[BL09xxDecoder]) -> None:
    decoder = cls()
    events = decoder.feed(data, 0)
    assert all(isinstance(e, Measurement | DecodeError) for e in events)
    assert decoder.counters.frames_ok == len(measurements(events))
    assert sum(decoder.counters.dropped.values()) == len(errors(events))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=30),
                          st.floats(80, 300), st.floats(0, 20), st.floats(0, 4000)),
                max_size=6),
       st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_fuzz_valid_answers_in_garbage_any_chunking(
        parts: list[tuple[bytes, float, float, float]], cuts: list[int]) -> None:
    ref = BL0942Decoder()
    stream = b""
    for cf, (junk, volts, amps, watts) in enumerate(parts):
        answer = encode_answer(ref, voltage_v=volts, current_a=amps, power_w=watts, cf_cnt=cf)
        stream += junk.replace(b"\x55", b"") + answer
    whole = values(BL0942Decoder().feed(stream, 0))
    assert len(whole) == len(parts)
    chunked: list[Event] = []
    decoder = BL0942Decoder()
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        chunked += decoder.feed(stream[pos:pos + step], 0)
        pos, i = pos + step, i + 1
    assert values(chunked) == whole
