"""HLW8032 / CSE7766 decoder: real published frames, framing, low load, counters, fuzz."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattd.protocols.base import DecodeError, Event, Measurement
from wattd.protocols.hlw8032 import HLW8032Decoder, encode_frame
from wattd.protocols.plausible import Plausible
from wattd.protocols.registry import get_driver

NS = 1_000_000_000
FRAME_NS = 104_000_000
CONTENT_DROPS = ("uncalibrated", "state_error", "implausible")


def frame(*, state: int = 0x55, vpar: int = 190_200, vreg: int = 827, ipar: int = 16_400,
          ireg: int = 40_000, ppar: int = 5_351_000, preg: int = 53_510, update: int = 0x71,
          pf: int = 0, check: int = 0x5A, bad_checksum: bool = False) -> bytes:
    body = b"".join(v.to_bytes(3, "big") for v in (vpar, vreg, ipar, ireg, ppar, preg))
    body += bytes((update,)) + pf.to_bytes(2, "big")
    checksum = (sum(body) + (1 if bad_checksum else 0)) & 0xFF
    return bytes((state, check)) + body + bytes((checksum,))


def test_encoder_builds_the_frames_the_decoder_reads() -> None:
    regs = {"vpar": 190_200, "vreg": 827, "ipar": 16_400, "ireg": 40_000, "ppar": 5_351_000,
            "preg": 53_510, "update": 0x71}
    encoded = encode_frame(state=0x55, pf=0x1_0007, **regs)
    assert encoded == frame(pf=7, **regs)  # the counter goes on the wire modulo 65536
    [m] = measurements(HLW8032Decoder("cse7766").feed(encoded, NS))
    assert m.voltage_v == pytest.approx(190_200 / 827)
    assert m.power_w == pytest.approx(5_351_000 / 53_510)
    assert encode_frame(state=0xF2, pf=0, **regs)[0] == 0xF2


def measurements(events: list[Event]) -> list[Measurement]:
    return [e for e in events if isinstance(e, Measurement)]


def errors(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, DecodeError)]


def hexframe(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --------------------------------------------------------------------------- real frames
# xoseperez/espurna issue #867 (Sonoff POW R2, CSE7759B, ESPurna debug log), turn 20:
# https://github.com/xoseperez/espurna/issues/867
# ESPurna printed for these no-load frames: "current: 0.000A", "voltage: 231V", "power: 0W".
ESPURNA_867_NO_LOAD = "F2 5A 02 B7 50 00 03 01 00 3D 36 03 6B 37 4C 72 50 E8 4E A4 61 00 6F DD"
# Same thread, turn 21: ESPurna printed "voltage: 234V", "power: 0W", "current: 0.000A".
ESPURNA_867_234V = "F2 5A 02 B7 50 00 02 F8 00 3D 36 03 42 C6 4C 72 50 CB 99 4F 61 00 79 1C"
# letscontrolit/ESPEasy issue #1920 "CSE7766 strange low voltage" (bytes printed in decimal):
# https://github.com/letscontrolit/ESPEasy/issues/1920
# ESPEasy printed "CSE voltage: 235.11", power 0.00, current 0.00, "CSE pulses: 51941".
ESPEASY_1920_A = bytes((242, 90, 2, 230, 248, 0, 3, 41, 0, 64, 31, 4, 61, 126, 80, 78,
                        152, 250, 232, 156, 97, 202, 229, 238))
# Same log, later frame: "CSE voltage: 234.53", "CSE pulses: 51941".
ESPEASY_1920_B = bytes((242, 90, 2, 230, 248, 0, 3, 43, 0, 64, 31, 4, 50, 155, 80, 78,
                        152, 31, 23, 74, 97, 202, 229, 4))
# Frames quoted in Tasmota's own driver comments (arendst/Tasmota,
# tasmota/tasmota_xnrg_energy/xnrg_02_cse7766.ino, CseReceived()), with their labels:
TASMOTA_NO_LOAD = "F2 5A 02 F7 60 00 03 61 00 40 10 05 72 40 51 A6 58 63 10 1B E1 7F 4D 4E"
TASMOTA_POWER_NOT_VALID = "55 5A 02 F7 60 00 03 5A 00 40 10 04 8B 9F 51 A6 58 18 72 75 61 AC A1 30"
TASMOTA_OK = "55 5A 02 F7 60 00 03 AB 00 40 10 02 60 5D 51 A6 58 03 E9 EF 71 0B 7A 36"
TASMOTA_OK_VOLTAGE = "55 5A 02 DB 40 00 03 25 00 3D 18 03 8E CD 4F 0A 60 2A 56 85 61 01 02 1A"
TASMOTA_WRONG_VOLTAGE = "55 5A 02 DB 40 07 17 1D 00 3D 18 03 8E CD 4F 0A 60 2B EF EA 61 01 02 2C"
# arendst/Tasmota issue #6302 (Sonoff POW R2, CSE7766), serial dump: a frame whose tail was
# lost (Tasmota logged "CSE: Checksum failure") directly followed by the next good frame.
# https://github.com/arendst/Tasmota/issues/6302
TASMOTA_6302_GOOD = [
    "55 5A 02 EC 70 00 03 5E 00 40 B5 00 6C 4E 52 0F D0 00 A3 C7 F2 6F 28 92",
    "55 5A 02 EC 70 00 03 5E 00 40 B5 00 6C 4E 52 0F D0 00 A3 C7 F2 6F 2A 94",
]
TASMOTA_6302_TORN = "55 5A 02 EC 70 00 03 5E 00 40 B5 00 6C FE 53 D1 FE"
TASMOTA_6302_AFTER = "55 5A 02 EC 70 00 03 5E 00 40 B5 00 6C 4E 52 0F D0 00 A3 C7 F2 6F 2F 99"
# arendst/Tasmota issue #11389 (SP-G01 plug, CSE7766), "DMP:" lines, 105 ms apart:
# https://github.com/arendst/Tasmota/issues/11389
TASMOTA_11389 = [
    "55 5A 02 FB 48 00 03 2B 00 40 4C 00 1F BB 52 65 C0 00 32 52 71 02 3D 84",
    "55 5A 02 FB 48 00 03 2B 00 40 4C 00 1F BB 52 65 C0 00 32 5D 71 02 45 97",
    "55 5A 02 FB 48 00 03 2B 00 40 4C 00 1F BB 52 65 C0 00 32 5D 71 02 4D 9F",
]


@pytest.mark.parametrize(("raw", "volts_published"), [
    (hexframe(ESPURNA_867_NO_LOAD), 231),
    (hexframe(ESPURNA_867_234V), 234),
])
def test_espurna_no_load_frames_match_published_values(raw: bytes, volts_published: int) -> None:
    [m] = HLW8032Decoder("cse7766").feed(raw, 0)
    assert isinstance(m, Measurement)
    assert m.status == "no_load"
    assert round(m.voltage_v or 0) == volts_published
    assert m.power_w == 0.0
    assert m.current_a == 0.0
    assert m.power_factor is None  # S == 0


@pytest.mark.parametrize(("raw", "volts_published"), [
    (ESPEASY_1920_A, 235.11), (ESPEASY_1920_B, 234.53)])
def test_espeasy_frames_match_published_values(raw: bytes, volts_published: float) -> None:
    [m] = HLW8032Decoder("cse7766").feed(raw, 0)
    assert isinstance(m, Measurement)
    assert m.voltage_v == pytest.approx(volts_published, abs=0.01)
    assert m.pf_count == 51941
    assert (m.power_w, m.current_a, m.status) == (0.0, 0.0, "no_load")


def test_tasmota_labelled_frames() -> None:
    assert measurements(HLW8032Decoder("cse7766").feed(hexframe(TASMOTA_NO_LOAD), 0))[0].status \
        == "no_load"
    # "61 = Power not valid (load below 5W)": no refreshed power yet -> unknown, not 0 W.
    [m] = HLW8032Decoder("cse7766").feed(hexframe(TASMOTA_POWER_NOT_VALID), 0)
    assert isinstance(m, Measurement)
    assert m.power_w is None
    assert m.voltage_v == pytest.approx(194_400 / 0x35A)
    # "71 = Ok": V = Vpar/Vreg, I = Ipar/Ireg, P = Ppar/Preg.
    [m] = HLW8032Decoder("cse7766").feed(hexframe(TASMOTA_OK), 0)
    assert isinstance(m, Measurement)
    assert m.voltage_v == pytest.approx(207.03, abs=0.01)
    assert m.current_a == pytest.approx(16_400 / 0x02605D)
    assert m.power_w == pytest.approx(5_351_000 / 0x03E9EF)
    assert m.apparent_va == pytest.approx(m.voltage_v * m.current_a)
    assert m.power_factor == pytest.approx(m.power_w / m.apparent_va)
    [m] = HLW8032Decoder("cse7766").feed(hexframe(TASMOTA_OK_VOLTAGE), 0)
    assert isinstance(m, Measurement)
    assert m.voltage_v == pytest.approx(232.55, abs=0.01)


def test_valid_checksum_absurd_voltage_is_implausible() -> None:
    """Tasmota's "Wrong voltage" frame: checksum fine, 0.4 V."""
    decoder = HLW8032Decoder("cse7766")
    events = decoder.feed(hexframe(TASMOTA_WRONG_VOLTAGE), 0)
    assert errors(events) == ["implausible"]
    assert "0.403 V" in events[0].detail  # type: ignore[union-attr]
    assert decoder.counters.frames_ok == 0
    assert decoder.counters.skipped_bytes == 0


def test_tasmota_6302_torn_frame_resyncs_on_the_next_frame() -> None:
    stream = b"".join(hexframe(h) for h in TASMOTA_6302_GOOD) + hexframe(TASMOTA_6302_TORN) \
        + hexframe(TASMOTA_6302_AFTER)
    decoder = HLW8032Decoder("cse7766")
    events = decoder.feed(stream, 0)
    ms = measurements(events)
    assert [m.pf_count for m in ms] == [0x6F28, 0x6F2A, 0x6F2F]
    assert errors(events) == ["checksum"]
    assert ms[-1].power_w == pytest.approx(5_378_000 / 0xA3C7)
    assert decoder.counters.skipped_bytes == len(hexframe(TASMOTA_6302_TORN))
    # 5 pulses between the first and the last frame, 5.378 J each (Ppar / 1e6).
    assert ms[-1].energy_j == pytest.approx(7 * 5.378)


def test_tasmota_11389_sequence_power_refreshed_every_frame() -> None:
    decoder = HLW8032Decoder("cse7766")
    ms = [m for i, h in enumerate(TASMOTA_11389)
          for m in measurements(decoder.feed(hexframe(h), i * 105_000_000))]
    assert [round(m.power_w or 0, 1) for m in ms] == [
        round(0x5265C0 / p, 1) for p in (0x3252, 0x325D, 0x325D)]
    assert ms[-1].energy_j == pytest.approx((0x024D - 0x023D) * 0x5265C0 / 1e6)


# --------------------------------------------------------------------------- framing
def stream_of(n: int) -> list[bytes]:
    return [frame(pf=i, preg=53_510 + i) for i in range(n)]


def test_whole_byte_by_byte_and_wrapped_in_garbage_agree() -> None:
    frames = stream_of(6)
    whole = measurements(HLW8032Decoder().feed(b"".join(frames), 0))
    decoder = HLW8032Decoder()
    by_byte = [m for b in b"".join(frames) for m in measurements(decoder.feed(bytes((b,)), 0))]
    garbage = b"\x00\x5a\x55\x13\xaa\xff\x5a\x5a\xf2"
    wrapped_decoder = HLW8032Decoder()
    tail = b"\x00\x13\x5a\x01\xf2"
    wrapped = measurements(wrapped_decoder.feed(garbage + b"".join(frames) + tail, 0))
    assert len(whole) == 6
    assert whole == by_byte == wrapped
    assert wrapped_decoder.counters.frames_ok == 6
    # The tail ends with a state byte that could open a frame: that byte is pending.
    assert wrapped_decoder.counters.skipped_bytes == len(garbage) + len(tail) - 1
    assert errors(wrapped_decoder.flush(0)) == []  # one byte is no frame: not `incomplete`
    assert wrapped_decoder.counters.skipped_bytes == len(garbage) + len(tail)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 65535), st.integers(1, 0xFFFF),
                          st.sampled_from([0x55, 0xF2, 0xF8, 0xAA]), st.integers(0, 255),
                          st.booleans()), min_size=1, max_size=20))
def test_one_frame_per_read_agrees_with_the_general_path(
        specs: list[tuple[int, int, int, int, bool]]) -> None:
    """The port's usual read is one whole frame (VMIN): that shortcut must decode
    exactly as the byte-scanning path does, bad checksums included."""
    frames = []
    for pf, preg, state, update, corrupt in specs:
        raw = bytearray(frame(pf=pf, preg=53_000 + preg % 1000, state=state, update=update))
        if corrupt:
            raw[10] ^= 0x40  # checksum no longer matches
        frames.append(bytes(raw))
    per_frame, scanned = HLW8032Decoder(), HLW8032Decoder()
    fast = [e for i, f in enumerate(frames) for e in per_frame.feed(f, i * 50_000_000)]
    slow: list[Event] = []
    for i, f in enumerate(frames):  # the same reads, each split in two: no shortcut
        slow += scanned.feed(f[:5], i * 50_000_000 - 1)
        slow += scanned.feed(f[5:], i * 50_000_000)
    assert measurements(fast) == measurements(slow)
    assert errors(fast) == errors(slow)
    assert per_frame.counters.frames_ok == scanned.counters.frames_ok
    assert per_frame.counters.dropped == scanned.counters.dropped


def test_garbage_between_frames_in_sync_counts_check_byte_once() -> None:
    decoder = HLW8032Decoder()
    events = decoder.feed(frame(pf=1) + b"\x01\x02\x03" + frame(pf=2), 0)
    assert errors(events) == ["check_byte"]
    assert len(measurements(events)) == 2
    assert decoder.counters.skipped_bytes == 3


def test_wrong_check_byte_frame_is_skipped_and_next_frame_found() -> None:
    decoder = HLW8032Decoder()
    events = decoder.feed(frame(pf=1) + frame(pf=2, check=0x5B) + frame(pf=3), 0)
    assert [m.pf_count for m in measurements(events)] == [1, 3]
    assert errors(events) == ["check_byte"]
    assert decoder.counters.skipped_bytes == 24


def test_good_frame_hidden_inside_a_bad_checksum_frame_is_not_lost() -> None:
    decoder = HLW8032Decoder()
    bad = frame(pf=1, bad_checksum=True)
    events = decoder.feed(bad[:10] + frame(pf=2), 0)
    assert errors(events) == ["checksum"]
    assert [m.pf_count for m in measurements(events)] == [2]
    assert decoder.counters.skipped_bytes == 10


def test_state_flags() -> None:
    decoder = HLW8032Decoder()
    events = decoder.feed(frame(state=0xAA) + frame(state=0xF8) + frame(state=0xF4)
                          + frame(state=0xF1) + frame(state=0xF3) + frame(state=0xF2, pf=0), 0)
    assert errors(events) == ["uncalibrated", "state_error", "state_error", "state_error",
                              "state_error"]
    [m] = measurements(events)
    assert (m.status, m.power_w, m.current_a) == ("no_load", 0.0, 0.0)
    assert decoder.counters.dropped == {"uncalibrated": 1, "state_error": 4}


def test_truncated_trailing_frame_is_incomplete_on_flush() -> None:
    decoder = HLW8032Decoder()
    decoder.feed(frame(pf=1) + frame(pf=2)[:15], 0)
    events = decoder.flush(NS)
    assert errors(events) == ["incomplete"]
    assert decoder.counters.skipped_bytes == 15


def test_partial_frame_after_a_long_silence_is_incomplete() -> None:
    decoder = HLW8032Decoder()
    decoder.feed(frame(pf=1)[:10], 0)
    events = decoder.feed(frame(pf=2), 5 * NS)
    assert errors(events) == ["incomplete"]
    assert [m.pf_count for m in measurements(events)] == [2]


def test_byte_time_estimates_each_frames_last_byte_arrival() -> None:
    byte_ns = get_driver("cse7766").serial.wire_time_ns(1)
    assert byte_ns == 2_291_666
    decoder = HLW8032Decoder(byte_time_ns=byte_ns)
    chunk = frame(pf=1) + frame(pf=2) + frame(pf=3)[:5]
    ms = measurements(decoder.feed(chunk, 10 * NS))
    assert [m.t_ns for m in ms] == [10 * NS - 29 * byte_ns, 10 * NS - 5 * byte_ns]


# --------------------------------------------------------------------------- values
def test_hlw8032_coefficients_apply() -> None:
    decoder = get_driver("gb202").make_decoder({"ki": 0.5})
    [m] = measurements(decoder.feed(frame(vreg=1556, ireg=40_000, preg=53_510), 0))
    assert m.voltage_v == pytest.approx(190_200 / 1556 * 1.88)
    assert m.current_a == pytest.approx(16_400 / 40_000 * 0.5)
    assert m.power_w == pytest.approx(5_351_000 / 53_510 * 1.88 * 0.5)


def test_implausible_current_and_power() -> None:
    decoder = HLW8032Decoder(plausible=Plausible(power_w=(0.0, 50.0)))
    events = decoder.feed(frame(ireg=100) + frame(preg=1000) + frame(preg=133_775), 0)
    assert errors(events) == ["implausible", "implausible"]
    assert len(measurements(events)) == 1


def test_pf_counter_wraps_with_bit7_toggle() -> None:
    decoder = HLW8032Decoder()
    frames = [frame(pf=65534, update=0x71), frame(pf=65535, update=0x71),
              frame(pf=1, update=0xF1), frame(pf=3, update=0xF1)]
    ms = [m for i, f in enumerate(frames) for m in measurements(decoder.feed(f, i * FRAME_NS))]
    assert [m.pf_count for m in ms] == [65534, 65535, 1, 3]
    assert ms[-1].energy_j == pytest.approx(5 * 5.351)


def test_pf_counter_jump_without_toggle_is_rebaselined_not_credited() -> None:
    decoder = HLW8032Decoder()
    events = []
    for i, f in enumerate([frame(pf=40_000), frame(pf=10), frame(pf=12)]):
        events += decoder.feed(f, i * FRAME_NS)
    assert errors(events) == ["implausible"]
    assert measurements(events)[-1].energy_j == pytest.approx(2 * 5.351)


def test_low_load_holds_then_caps_then_decays() -> None:
    """3 W: Preg 1.78 s, one refresh per pulse; a load that stops decays, never 0 W."""
    jpp = 5.351
    preg_3w = round(jpp / 3.0 * 1e6)
    decoder = HLW8032Decoder()
    t = 0

    def feed(**kw: int) -> Measurement:
        nonlocal t
        [m] = measurements(decoder.feed(frame(**kw), t))
        t += FRAME_NS
        return m

    assert feed(pf=0, preg=preg_3w, update=0x71).power_w == pytest.approx(3.0, rel=1e-4)
    # Frames without the power bit: the last refreshed power holds for one pulse period.
    held = [feed(pf=1, preg=100_000 * i, update=0x61).power_w for i in range(1, 17)]
    assert all(p == pytest.approx(3.0, rel=1e-4) for p in held)  # up to 1.66 s of silence
    # The load switched off: no more pulses; once the silence exceeds the period the
    # cap jpp / silence applies and keeps decaying.
    tail = [feed(pf=1, preg=100_000, update=0x61).power_w for _ in range(200)]
    assert all(p is not None and p > 0 for p in tail)
    assert tail[-1] == pytest.approx(jpp / ((216 - 1) * FRAME_NS / NS - 0.025), rel=1e-6)
    assert all(a >= b for a, b in itertools.pairwise(tail))
    assert tail[-1] < 0.3
    # Only the chip's no-load bit gives 0 W.
    assert feed(state=0xF2, pf=1, update=0x61).power_w == 0.0
    assert feed(pf=1, update=0x61).power_w is None  # unknown until a refresh


# --------------------------------------------------------------------------- fuzz
def check_invariants(decoder: HLW8032Decoder, events: list[Event], fed: int) -> None:
    assert all(isinstance(e, Measurement | DecodeError) for e in events)
    c = decoder.counters
    assert c.frames_ok == len(measurements(events))
    assert sum(c.dropped.values()) == len(errors(events))
    consumed = 24 * (c.frames_ok + sum(c.dropped[r] for r in CONTENT_DROPS))
    assert consumed + c.skipped_bytes == fed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 60), min_size=1, max_size=20))
def test_fuzz_random_bytes(data: bytes, cuts: list[int]) -> None:
    decoder = HLW8032Decoder()
    events: list[Event] = []
    pos = 0
    t = 0
    for cut in cuts * (len(data) // max(1, sum(cuts)) + 1):
        if pos >= len(data):
            break
        events += decoder.feed(data[pos:pos + cut], t)
        pos += cut
        t += cut * 2_291_666
    events += decoder.flush(t)
    check_invariants(decoder, events, len(data))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.builds(lambda pf, st_, upd: frame(pf=pf, state=st_, update=upd),
              st.integers(0, 65535), st.sampled_from([0x55, 0xAA, 0xF2, 0xF8, 0xF0]),
              st.integers(0, 255)),
    st.binary(max_size=30)), max_size=30), st.integers(1, 50))
def test_fuzz_frames_mixed_with_garbage(parts: list[bytes], chunk: int) -> None:
    data = b"".join(parts)
    decoder = HLW8032Decoder()
    events: list[Event] = []
    for i in range(0, len(data), chunk):
        events += decoder.feed(data[i:i + chunk], i * 2_291_666)
    events += decoder.flush(len(data) * 2_291_666)
    check_invariants(decoder, events, len(data))
