"""SPEC 8 cores fed hand-made frames and answers built from the protocol facts alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattd.protocols import http_digest, shelly, tasmota
from wattd.protocols.base import DecodeError, Measurement
from wattd.protocols.hwmon import HwmonDecoder
from wattd.protocols.mcp39f511n import MCP39F511NDecoder, read_request
from wattd.protocols.polled import CounterTracker
from wattd.protocols.um import UMDecoder

T = 1_000_000_000


def _le(value: int, n: int, signed: bool = False) -> bytes:
    return value.to_bytes(n, "little", signed=signed)


def mcp_output_reply(*, status: int, volts_x10: int, hz_x1000: int, pf1: int, amps1: int,
                     watts1_x100: int, watts2_x100: int = 0) -> bytes:
    """Written from the SPEC 8.1 table, independently of the module's encoder."""
    data = (_le(status, 2) + _le(0x0100, 2) + _le(volts_x10, 2) + _le(hz_x1000, 2)
            + _le(pf1, 2, True) + _le(0, 2) + _le(amps1, 4) + _le(0, 4)
            + _le(watts1_x100, 4) + _le(watts2_x100, 4))
    assert len(data) == 28
    body = bytes([0x06, 31]) + data
    return body + bytes([sum(body) & 0xFF])


def mcp_energy_reply(ch1: int, ch2: int = 0) -> bytes:
    body = bytes([0x06, 19]) + _le(ch1, 8) + _le(ch2, 8)
    return body + bytes([sum(body) & 0xFF])


def run_mcp_poll(decoder: MCP39F511NDecoder, output: bytes, energy: bytes | None,
                 t_ns: int = T) -> list[object]:
    decoder.start_poll()
    first = decoder.next_request()
    assert first == bytes([0xA5, 0x08, 0x41, 0x00, 0x02, 0x4E, 0x1C,
                           (0xA5 + 0x08 + 0x41 + 0x02 + 0x4E + 0x1C) & 0xFF])
    events: list[object] = list(decoder.feed(output, t_ns))
    if not decoder.reply_pending():
        second = decoder.next_request()
        if second is not None:
            assert second == read_request(0x002E, 16)
            assert energy is not None
            events += decoder.feed(energy, t_ns + 1000)
    return events


def test_mcp_read_reply_decodes_channel_1_with_import_sign() -> None:
    dec = MCP39F511NDecoder()
    output = mcp_output_reply(status=1 << 4, volts_x10=2301, hz_x1000=50012, pf1=16384,
                              amps1=2609, watts1_x100=3001)
    (m,) = run_mcp_poll(dec, output, mcp_energy_reply(1000))
    assert isinstance(m, Measurement)
    assert m.power_w == pytest.approx(30.01)
    assert m.voltage_v == pytest.approx(230.1)
    assert m.current_a == pytest.approx(0.2609)
    assert m.power_factor == pytest.approx(0.5)
    assert m.frequency_hz == pytest.approx(50.012)
    assert m.energy_j == 0.0  # the counter's first value is the origin
    assert m.t_ns == T  # the output reply's arrival: the transport stamps from it
    (m2,) = run_mcp_poll(dec, output, mcp_energy_reply(1250))
    assert isinstance(m2, Measurement)
    assert m2.energy_j == pytest.approx(250 * 3.6)
    assert dec.counters.frames_ok == 2


def test_mcp_counter_that_never_moved_is_no_counter() -> None:
    dec = MCP39F511NDecoder()
    output = mcp_output_reply(status=16, volts_x10=2300, hz_x1000=50000, pf1=30000,
                              amps1=4000, watts1_x100=9000)
    (m,) = run_mcp_poll(dec, output, mcp_energy_reply(0))
    assert isinstance(m, Measurement)
    assert m.energy_j is None  # accumulation off: absent, not 0 J
    (m,) = run_mcp_poll(dec, output, mcp_energy_reply(3))
    assert isinstance(m, Measurement)
    assert m.energy_j == 0.0  # the counter moved: it counts from here
    (m,) = run_mcp_poll(dec, output, mcp_energy_reply(5))
    assert isinstance(m, Measurement)
    assert m.energy_j == pytest.approx(2 * 3.6)


def test_mcp_export_is_negative_power() -> None:
    dec = MCP39F511NDecoder()
    output = mcp_output_reply(status=0, volts_x10=2300, hz_x1000=50000, pf1=-30000, amps1=5000,
                              watts1_x100=10000)
    (m,) = run_mcp_poll(dec, output, mcp_energy_reply(0))
    assert isinstance(m, Measurement)
    assert m.power_w == pytest.approx(-100.0)


def test_mcp_wrong_checksum_nak_and_garbage_are_counted_without_reading() -> None:
    dec = MCP39F511NDecoder()
    good = mcp_output_reply(status=16, volts_x10=2300, hz_x1000=50000, pf1=32000, amps1=1000,
                            watts1_x100=2000)
    bad = good[:-1] + bytes([(good[-1] + 1) & 0xFF])
    events = run_mcp_poll(dec, bad, None)
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["checksum"]
    assert dec.next_request() is None  # the poll ends: no energy read after a bad reply
    events = run_mcp_poll(dec, b"\x15", None)
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["nak"]
    events = run_mcp_poll(dec, b"\x51", None)
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["request_checksum"]
    events = run_mcp_poll(dec, b"\x00\x01garbage", None)
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["garbage"]
    # A torn reply then silence: the transport's timeout ends it.
    dec.start_poll()
    dec.next_request()
    assert dec.feed(good[:10], T) == []
    assert dec.reply_pending()
    assert [e.reason for e in dec.reply_timeout(T)] == ["incomplete"]
    assert dec.counters.frames_ok == 0
    assert dict(dec.counters.dropped) == {"checksum": 1, "nak": 1, "request_checksum": 1,
                                          "garbage": 1, "incomplete": 1}


def test_mcp_implausible_voltage_dropped() -> None:
    dec = MCP39F511NDecoder()
    output = mcp_output_reply(status=16, volts_x10=4, hz_x1000=50000, pf1=0, amps1=0,
                              watts1_x100=0)
    events = run_mcp_poll(dec, output, mcp_energy_reply(0))
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["implausible"]


def test_mcp_capture_scan_finds_replies_between_garbage() -> None:
    dec = MCP39F511NDecoder()
    output = mcp_output_reply(status=16, volts_x10=2300, hz_x1000=50000, pf1=0, amps1=1000,
                              watts1_x100=2000)
    stream = b"\x06\x99junk" + output + mcp_energy_reply(5) + output
    events = [e for i in range(len(stream)) for e in dec.feed(stream[i:i + 1], T)]
    assert [e.power_w for e in events if isinstance(e, Measurement)] == [20.0, 20.0]


def um_frame(model: int, volts: int, amps: int, milliwatts: int, mwh: int = 0) -> bytes:
    """130 bytes, big-endian, from the SPEC 8.2 offsets."""
    frame = bytearray(130)
    frame[0:2] = model.to_bytes(2, "big")
    frame[2:4] = volts.to_bytes(2, "big")
    frame[4:6] = amps.to_bytes(2, "big")
    frame[6:10] = milliwatts.to_bytes(4, "big")
    frame[10:12] = (24).to_bytes(2, "big")
    frame[106:110] = mwh.to_bytes(4, "big")
    return bytes(frame)


def um_poll(dec: UMDecoder, *chunks: bytes) -> list[object]:
    dec.start_poll()
    assert dec.next_request() == b"\xf0"
    events: list[object] = []
    for chunk in chunks:
        events += dec.feed(chunk, T)
    return events


def test_um24c_and_um25c_units() -> None:
    dec = UMDecoder()
    (m,) = um_poll(dec, um_frame(0x0963, 512, 612, 3133, mwh=10))
    assert isinstance(m, Measurement)
    assert (m.voltage_v, m.current_a, m.power_w) == (pytest.approx(5.12), pytest.approx(0.612),
                                                     pytest.approx(3.133))
    assert m.energy_j == 0.0
    (m,) = um_poll(dec, um_frame(0x0963, 512, 612, 3133, mwh=12))
    assert isinstance(m, Measurement)
    assert m.energy_j == pytest.approx(2 * 3.6)
    dec25 = UMDecoder()
    frame = um_frame(0x09C9, 5123, 6123, 3137)
    (m,) = um_poll(dec25, frame[:50], frame[50:])  # in two reads
    assert isinstance(m, Measurement)
    assert (m.voltage_v, m.current_a) == (pytest.approx(5.123), pytest.approx(0.6123))
    assert dec25.model == "UM25C"


def test_um_short_frame_and_unknown_model_are_counted() -> None:
    dec = UMDecoder()
    assert um_poll(dec, um_frame(0x0963, 500, 500, 2500)[:64]) == []
    assert dec.reply_pending()
    assert [e.reason for e in dec.reply_timeout(T)] == ["short_frame"]
    events = um_poll(dec, um_frame(0x1234, 500, 500, 2500))
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["unknown_model"]
    events = um_poll(dec, um_frame(0x0963, 9000, 500, 2500))  # 90 V on a USB meter
    assert [e.reason for e in events if isinstance(e, DecodeError)] == ["implausible"]
    assert dec.counters.frames_ok == 0


def test_shelly_gen2_and_gen1_answers() -> None:
    counters = shelly.ShellyDecoder(2).counters
    assert shelly.decode_info(counters, 200, b'{"id":"x","gen":2,"model":"SNPL"}') == 2
    assert shelly.decode_info(counters, 200, b'{"type":"SHPLG-S","mac":"AA"}') == 1
    gen2 = shelly.ShellyDecoder(2, channel=0)
    assert gen2.request_path() == "/rpc/Switch.GetStatus?id=0"
    body = (b'{"id":0,"output":true,"apower":12.3,"voltage":231.4,"current":0.081,'
            b'"pf":0.66,"aenergy":{"total":1000.5,"by_minute":[1,2,3]}}')
    m = gen2.decode(200, body, T)
    assert isinstance(m, Measurement)
    assert (m.power_w, m.voltage_v, m.current_a, m.power_factor) == (12.3, 231.4, 0.081, 0.66)
    assert m.energy_j == 0.0
    m = gen2.decode(200, body.replace(b"1000.5", b"1001.5"), T)
    assert isinstance(m, Measurement)
    assert m.energy_j == pytest.approx(3600.0)
    gen1 = shelly.ShellyDecoder(1, channel=1)
    assert gen1.request_path() == "/status"
    doc = {"meters": [{"power": 1.0, "total": 5}, {"power": 7.5, "total": 120}]}
    m = gen1.decode(200, json.dumps(doc).encode(), T)
    assert isinstance(m, Measurement)
    assert m.power_w == 7.5
    doc["meters"][1]["total"] = 121  # one watt-minute more
    m = gen1.decode(200, json.dumps(doc).encode(), T)
    assert isinstance(m, Measurement)
    assert m.energy_j == pytest.approx(60.0)


@pytest.mark.parametrize(("status", "body", "reason"), [
    (401, b"401 Unauthorized", "auth"),
    (500, b'{"code":-1}', "http_status"),
    (200, b"<html>", "garbage"),
    (200, b'{"id":0,"voltage":230.0,"aenergy":{"total":1.0}}', "missing_field"),
    (200, b'{"id":0,"apower":true}', "missing_field"),
    (200, b'{"id":0,"apower":12,"voltage":20.0}', "implausible"),
])
def test_shelly_bad_answers_are_counted_never_zero(status: int, body: bytes,
                                                    reason: str) -> None:
    dec = shelly.ShellyDecoder(2)
    event = dec.decode(status, body, T)
    assert isinstance(event, DecodeError)
    assert event.reason == reason
    assert dec.counters.dropped[reason] == 1
    assert dec.counters.frames_ok == 0


def test_tasmota_status_10_warning_and_channels() -> None:
    assert tasmota.request_path() == "/cm?cmnd=Status%2010"
    assert tasmota.request_path("admin", "p&w d") == ("/cm?cmnd=Status%2010&user=admin"
                                                      "&password=p%26w%20d")
    dec = tasmota.TasmotaDecoder()
    body = (b'{"StatusSNS":{"Time":"2024-05-01T10:00:00","ENERGY":{"TotalStartTime":'
            b'"2024-01-01T00:00:00","Total":12.345,"Yesterday":0.1,"Today":0.2,"Power":42,'
            b'"ApparentPower":50,"ReactivePower":27,"Factor":0.84,"Voltage":229,'
            b'"Current":0.218}}}')
    m = dec.decode(200, body, T)
    assert isinstance(m, Measurement)
    assert (m.power_w, m.voltage_v, m.current_a, m.power_factor) == (42.0, 229.0, 0.218, 0.84)
    m = dec.decode(200, body.replace(b"12.345", b"12.346"), T)
    assert isinstance(m, Measurement)
    assert m.energy_j == pytest.approx(3600.0)
    warning = dec.decode(200, b'{"WARNING":"Need user=<username>&password=<password>"}', T)
    assert isinstance(warning, DecodeError)
    assert warning.reason == "auth"
    two = tasmota.TasmotaDecoder(channel=1)
    m = two.decode(200, b'{"StatusSNS":{"ENERGY":{"Power":[3,9],"Voltage":230,'
                        b'"Current":[0.02,0.05],"Total":[1.0,2.0]}}}', T)
    assert isinstance(m, Measurement)
    assert (m.power_w, m.current_a) == (9.0, 0.05)
    missing = dec.decode(200, b'{"StatusSNS":{"ENERGY":{"Voltage":230}}}', T)
    assert isinstance(missing, DecodeError)
    assert missing.reason == "missing_field"


def test_hwmon_with_and_without_power_file() -> None:
    dec = HwmonDecoder()
    m = dec.decode({"power1_input": "3125000\n", "in1_input": "5100\n",
                    "curr1_input": "612\n"}, T)
    assert isinstance(m, Measurement)
    assert (m.power_w, m.voltage_v, m.current_a) == (3.125, 5.1, 0.612)
    m = dec.decode({"in1_input": "5000\n", "curr1_input": "600\n"}, T)  # no power1_input
    assert isinstance(m, Measurement)
    assert m.power_w == pytest.approx(3.0)
    bad = dec.decode({"in1_input": "5000\n", "curr1_input": "\x00\x01"}, T)
    assert isinstance(bad, DecodeError)
    assert bad.reason == "garbage"
    negative = dec.decode({"power1_input": "-2000000\n", "in1_input": "5000\n",
                           "curr1_input": "400\n"}, T)
    assert isinstance(negative, DecodeError)
    assert negative.reason == "implausible"  # reversed shunt: not a reading
    missing = dec.decode({"in1_input": "5000\n"}, T)
    assert isinstance(missing, DecodeError)
    assert missing.reason == "missing_field"
    assert dec.counters.frames_ok == 2


def test_digest_rfc7616_example() -> None:
    challenge = http_digest.parse_challenge(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    assert challenge is not None
    header = http_digest.authorization(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle of Life", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc=1)
    assert 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"' in header
    md5 = dict(challenge, algorithm="MD5")
    header = http_digest.authorization(
        md5, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle of Life", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc=1)
    assert 'response="8ca523f5e9506fed4657c9700eebdbec"' in header


def test_counter_tracker_restart_keeps_counted_energy() -> None:
    c = CounterTracker()
    assert c.update(100.0) == 0.0
    assert c.update(130.0) == 30.0
    assert c.update(5.0) == 35.0  # reset to 0 then 5
    assert c.resets == 1
    assert c.update(None) == 35.0


# ------------------------------------------------------------------ properties
@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8), st.booleans())
def test_mcp_random_bytes_give_readings_or_counted_errors(chunks: list[bytes],
                                                          polled: bool) -> None:
    dec = MCP39F511NDecoder()
    events: list[object] = []
    if polled:
        dec.start_poll()
        dec.next_request()
    for chunk in chunks:
        events += dec.feed(chunk, T)
        if polled and not dec.reply_pending():
            dec.next_request()
    if polled and dec.reply_pending():
        events += dec.reply_timeout(T)
    for e in events:
        assert isinstance(e, Measurement | DecodeError)
        if isinstance(e, Measurement):
            assert e.power_w is not None
            assert 80 <= (e.voltage_v or 0) <= 300
    errors = sum(isinstance(e, DecodeError) for e in events)
    assert errors == sum(dec.counters.dropped.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6), st.booleans())
def test_um_random_bytes_give_readings_or_counted_errors(chunks: list[bytes],
                                                         polled: bool) -> None:
    dec = UMDecoder()
    events: list[object] = []
    if polled:
        dec.start_poll()
        dec.next_request()
    for chunk in chunks:
        events += dec.feed(chunk, T)
    if polled and dec.reply_pending():
        events += dec.reply_timeout(T)
    for e in events:
        assert isinstance(e, Measurement | DecodeError)
        if isinstance(e, Measurement):
            assert 0 <= (e.voltage_v or 0) <= 30
    assert sum(isinstance(e, DecodeError) for e in events) == sum(dec.counters.dropped.values())


@settings(max_examples=200, deadline=None)
@given(st.integers(100, 599), st.binary(max_size=200))
def test_plug_random_answers_give_readings_or_counted_errors(status: int, body: bytes) -> None:
    for dec in (shelly.ShellyDecoder(2), shelly.ShellyDecoder(1), tasmota.TasmotaDecoder()):
        event = dec.decode(status, body, T)
        assert isinstance(event, Measurement | DecodeError)
        if isinstance(event, DecodeError):
            assert sum(dec.counters.dropped.values()) == 1


def test_identify_recognises_mcp_and_um_captures() -> None:
    from wattd.protocols.identify import identify
    from wattd.protocols.mcp39f511n import encode_energy, encode_output, encode_reply
    from wattd.protocols.um import encode_frame

    output = encode_reply(encode_output(voltage_v=231.0, frequency_hz=50.0,
                                        channels={1: (25.0, 0.12, 0.9)}))
    mcp_capture = [(i * 100_000_000, output + encode_reply(encode_energy({1: i})))
                   for i in range(10)]
    best = identify(mcp_capture)[0]
    assert (best.driver, best.decodes) == ("mcp39f511n", True)
    assert best.median_power_w == pytest.approx(25.0)
    um_capture = [(i * 500_000_000, encode_frame("UM34C", voltage_v=5.05, current_a=0.6,
                                                 power_w=3.03)) for i in range(6)]
    um_capture.insert(3, (1, b"\x00garbage"))
    best = identify(um_capture)[0]
    assert (best.driver, best.decodes) == ("um", True)
    assert best.median_voltage_v == pytest.approx(5.05)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["power1_input", "in1_input", "curr1_input"]),
                       st.text(max_size=12)))
def test_hwmon_random_file_contents_give_readings_or_counted_errors(
        texts: dict[str, str]) -> None:
    dec = HwmonDecoder()
    event = dec.decode(texts, T)
    assert isinstance(event, Measurement | DecodeError)
    if isinstance(event, Measurement):
        assert event.power_w is not None
        assert 0 <= event.power_w <= 300
    else:
        assert sum(dec.counters.dropped.values()) == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_digest_challenge_parser_never_raises(header: str) -> None:
    challenge = http_digest.parse_challenge(header)
    assert challenge is None or {"realm", "nonce"} <= set(challenge)
