"""SPEC 2 wire format: parse/format, refusals, replies, HMAC."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattd.errors import MarkerInputError
from wattd.markers import wire
from wattd.markers.events import (
    Aborted,
    EventRecorded,
    PhaseOpened,
    Pong,
    Refused,
    RunClosed,
    RunOpened,
    StatusAnswered,
    StopResult,
)
from wattd.markers.protocol import (
    MarkerMessage,
    format_message,
    parse_message,
    parse_reply,
    send,
)

SECRET = b"s3cret"


def test_shell_echo_form() -> None:
    msg = parse_message(b"start rust-500k lang=rust requests=500000\n")
    assert msg == MarkerMessage("start", "rust-500k", {"lang": "rust", "requests": "500000"})
    assert parse_message(b"stop rust-500k\r\n").verb == "stop"


def test_reserved_keys() -> None:
    msg = parse_message(b"start r phase=warm%20up meter=gb202 ts=1700000000000000000 id=7 a=b")
    assert msg.phase == "warm up"
    assert msg.meter == "gb202"
    assert msg.ts_ns == 1_700_000_000_000_000_000
    assert msg.msg_id == "7"
    assert msg.tags == {"a": "b"}


def test_status_and_ping_take_no_name() -> None:
    assert parse_message(b"ping").verb == "ping"
    assert parse_message(b"status id=3").msg_id == "3"
    for bad in (b"ping foo", b"status x=1", b"ping phase=a"):
        with pytest.raises(MarkerInputError):
            parse_message(bad)


def test_percent_decoding() -> None:
    msg = parse_message(b"event e note=a%3Db%25c%20d%C3%A9 raw=caf\xc3\xa9")
    assert msg.tags == {"note": "a=b%c d\u00e9", "raw": "caf\u00e9"}
    assert b"note=a%3Db%25c%20d%C3%A9" in format_message(msg)


@pytest.mark.parametrize("data", [
    b"", b"\n", b"   ", b"jump x", b"start", b"start bad name!", b"start " + b"x" * 129,
    b"start x time=1", b"start x _hidden=1", b"start x energy_j=3", b"start x run=y",
    b"start x power_w=1", b"start x source=a", b"start x k=a%0Ab", b"start x k=a%7Fb",
    b"start x k=%C2%85", b"start x k=%FF", b"start x k=%G1", b"start x k=%4", b"start x k=",
    b"start x k", b"start x =v", b"start x 1k=v", b"start x k=1 k=2", b"start x ts=abc",
    b"start x ts=-5", b"start x ts=99999999999999999999", b"start x k=" + b"v" * 257,
    b"start x\tk=v", b"start x k=v\x00", b"start \xff\xfe", b"start x " + b"a" * 1100,
    b"start x mac=00 id=1", b"start x " + b" ".join(b"k%d=v" % i for i in range(17)),
    b"start x k=" + b"%41" * 257, b"start x id=1 id=2",
    b"start x mac=" + b"0" * 64 + b" id=1",
])
def test_refusals(data: bytes) -> None:
    with pytest.raises(MarkerInputError) as info:
        parse_message(data)
    assert info.value.reason == "syntax"


def test_limits_accepted() -> None:
    sixteen = b" ".join(b"k%d=v" % i for i in range(16))
    assert len(parse_message(b"start x " + sixteen).tags) == 16
    assert parse_message(b"start " + b"n" * 128).name == "n" * 128
    assert parse_message(b"start x k=" + b"v" * 256).tags["k"] == "v" * 256


def test_oversize_datagram() -> None:
    body = b"start x k=" + b"v" * 200
    data = b" ".join([body] + [b"a%d=%s" % (i, b"v" * 60) for i in range(14)])
    assert len(data) > 1024
    with pytest.raises(MarkerInputError):
        parse_message(data)


def test_hmac_sign_verify() -> None:
    msg = MarkerMessage("start", "r", {"a": "b"}, ts_ns=5, msg_id="x")
    data = format_message(msg, secret=SECRET)
    parsed = parse_message(data + b"\n")
    assert parsed.mac is not None
    assert parsed.signed == data[: data.rfind(b" mac=")]
    assert wire.verify(SECRET, parsed.signed, parsed.mac)
    assert not wire.verify(b"other", parsed.signed, parsed.mac)
    tampered = parse_message(data.replace(b"a=b", b"a=c"))
    assert tampered.mac is not None
    assert not wire.verify(SECRET, tampered.signed, tampered.mac)


def test_reply_round_trip() -> None:
    ok = parse_reply(wire.format_ok("stop", "r", [("energy_j", 12.5), ("samples", 3),
                                                  ("energy_j.a b", 1.0)], msg_id="q 1"))
    assert ok.ok
    assert (ok.verb, ok.name, ok.msg_id) == ("stop", "r", "q 1")
    assert ok.number("energy_j") == 12.5
    assert ok.fields["samples"] == "3"
    err = parse_reply(wire.format_error("busy", "meter a has open run b\nx", msg_id="9"))
    assert not err.ok
    assert (err.code, err.msg_id) == ("busy", "9")
    assert "\n" not in err.text
    status = parse_reply(wire.format_status({"meters": {"a": {}}}, msg_id="5"))
    assert status.ok
    assert status.status == {"meters": {"a": {}}, "id": "5"}
    assert status.msg_id == "5"
    assert parse_reply(b"ok ping").verb == "ping"


# ------------------------------------------------------------------ properties

_names = st.from_regex(r"[A-Za-z0-9._:/-]{1,128}", fullmatch=True)
_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
    lambda k: k not in wire.SCHEMA_NAMES and k not in wire.RESERVED_KEYS and k != "time")
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40,
).filter(lambda v: len(v.encode("utf-8")) <= 256)


@st.composite
def messages(draw: st.DrawFn) -> MarkerMessage:
    verb = draw(st.sampled_from(wire.VERBS))
    if verb in wire.NAMED_VERBS:
        return MarkerMessage(
            verb=verb, name=draw(_names),
            tags=draw(st.dictionaries(_keys, _values, max_size=4)),
            phase=draw(st.none() | _values), meter=draw(st.none() | _values),
            ts_ns=draw(st.none() | st.integers(0, 2**62)),
            msg_id=draw(st.none() | _values),
            mac=draw(st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
        )
    return MarkerMessage(verb=verb, ts_ns=draw(st.none() | st.integers(0, 2**62)),
                         msg_id=draw(st.none() | _values))


@settings(max_examples=300, deadline=None)
@given(messages())
def test_format_then_parse_is_identity(msg: MarkerMessage) -> None:
    try:
        data = format_message(msg)
    except MarkerInputError:
        return  # only an over-long message (> 1024 bytes) may be refused here
    assert len(data) <= wire.MAX_DATAGRAM_BYTES
    assert parse_message(data) == msg
    assert parse_message(data + b"\n") == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1100))
def test_parser_raises_only_its_error_on_bytes(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except MarkerInputError as exc:
        reason = exc.reason
        assert reason == "syntax"
        return
    assert parse_message(format_message(msg)) == msg


_alphabet = st.sampled_from(
    ["start", "stop", "event", "ping", " ", "=", "%", "%2", "%20", "x", "mac=", "ts=", "id=",
     "phase=", "1", "\n", "\r", "\x00", "\u00e9", "_", "time=", "a" * 60])


@settings(max_examples=500, deadline=None)
@given(st.lists(_alphabet, max_size=30).map("".join))
def test_parser_raises_only_its_error_on_near_valid_text(text: str) -> None:
    reason = "syntax"
    try:
        parse_message(text.encode("utf-8"))
    except MarkerInputError as exc:
        reason = exc.reason
    assert reason == "syntax"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_reply_parser_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(MarkerInputError):
        parse_reply(data)


def test_send_formats_each_reply_event() -> None:
    assert send(Pong(1_700_000_000_000_000_000, msg_id="1")) == (
        b"ok ping t_ns=1700000000000000000 id=1")
    assert send(RunOpened("r", 5, skew_ms=1.23456)) == b"ok start r start_ns=5 skew_ms=1.235"
    assert send(RunOpened("r", 5)) == b"ok start r start_ns=5"
    assert send(PhaseOpened("r", "warm", 7, msg_id="a b")) == b"ok start r start_ns=7 id=a%20b"
    assert send(EventRecorded("r")) == b"ok event r"
    assert send(Aborted("r", msg_id="9")) == b"ok abort r id=9"
    assert send(Refused("busy", "m has run x", msg_id="2")) == b"error busy m has run x id=2"
    assert send(StatusAnswered({"meters": {}}, msg_id="3")) == (
        b'ok status {"meters":{},"id":"3"}')


def test_send_formats_a_stop_result_in_spec_order() -> None:
    result = StopResult(energy_j=60.0, duration_s=4.0, mean_w=15.0, max_w=20.0, samples=40,
                        counter_energy_j=59.5, extrapolated_s=0.05, gap_s=1.5,
                        per_meter_j=(("a", 30.0), ("b", 30.0)), clock_step=True)
    assert send(RunClosed("r", "p", result, msg_id="z")) == (
        b"ok stop r phase=p energy_j=60 duration_s=4 mean_w=15 max_w=20 samples=40 "
        b"counter_energy_j=59.5 extrapolated_s=0.05 gap_s=1.5 energy_j.a=30 energy_j.b=30 "
        b"clock_step=true id=z")
    plain = StopResult(energy_j=1.5, duration_s=1.0, mean_w=1.5, max_w=1.5, samples=10)
    reply = parse_reply(send(RunClosed("r", None, plain)))
    assert (reply.verb, reply.name, reply.fields) == ("stop", "r", {
        "energy_j": "1.5", "duration_s": "1", "mean_w": "1.5", "max_w": "1.5", "samples": "10"})
