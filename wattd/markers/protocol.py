"""Marker messages (SPEC 2): pure parse and format, no I/O.

``parse_message(datagram) -> MarkerMessage`` raises only
:class:`~wattd.errors.MarkerInputError`, whose ``reason`` is the reply code
(``syntax`` here; ``auth``/``stale``/``busy``/``unknown``/``rate`` come
from the server and the run engine). ``format_message(msg)`` is its inverse.
``send(event) -> bytes`` turns what the engine decided into the reply
datagram; ``parse_reply`` reads it back (clients).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wattd.errors import MarkerInputError
from wattd.markers import wire
from wattd.markers.events import (
    Aborted,
    EventRecorded,
    PhaseOpened,
    Pong,
    Refused,
    ReplyEvent,
    ResultAccepted,
    RunClosed,
    RunOpened,
    StatusAnswered,
    Unanswered,
)
from wattd.markers.timeline import encode_tags
from wattd.markers.wire import (
    FIELD_VERBS,
    MAC_SEPARATOR,
    MAX_DATAGRAM_BYTES,
    MAX_FIELD_KEYS,
    MAX_USER_TAGS,
    NAMED_VERBS,
    VERBS,
    Reply,
    check_field,
    check_tag_key,
    decode_value,
    format_error,
    format_ok,
    format_status,
    parse_reply,
    sign,
    verify,
)

__all__ = [
    "MarkerInputError",
    "MarkerMessage",
    "Reply",
    "format_error",
    "format_message",
    "format_ok",
    "format_status",
    "parse_message",
    "parse_reply",
    "send",
    "sign",
    "verify",
]

_MAX_TS_DIGITS = 19  # int64 ns: enough until 2262


@dataclass(slots=True, frozen=True)
class MarkerMessage:
    """One parsed marker. ``tags`` are the user tags (decoded), in wire order."""

    verb: str
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    phase: str | None = None
    meter: str | None = None
    ts_ns: int | None = None
    msg_id: str | None = None
    mac: str | None = None
    # The datagram bytes the mac covers (everything before " mac="); set by the parser.
    signed: bytes = field(default=b"", compare=False, repr=False)

    def text(self) -> str:
        """The user tags as ``k=v k=v`` (the ``text`` field of ``wattd_marker``)."""
        return encode_tags(self.tags)


def format_message(msg: MarkerMessage, secret: bytes | None = None) -> bytes:
    """The datagram for ``msg``; with ``secret`` a fresh mac replaces ``msg.mac``."""
    return wire.format_message(msg.verb, msg.name, tags=msg.tags, phase=msg.phase,
                               meter=msg.meter, ts_ns=msg.ts_ns, msg_id=msg.msg_id,
                               secret=secret, mac=None if secret is not None else msg.mac)


def strip_line_end(data: bytes) -> bytes:
    """Remove one trailing ``\\n`` or ``\\r\\n`` (as ``echo`` adds)."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def parse_message(data: bytes) -> MarkerMessage:
    """Parse one datagram. Raises MarkerInputError('syntax') and nothing else."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise MarkerInputError("syntax", f"datagram longer than {MAX_DATAGRAM_BYTES} bytes")
    data = strip_line_end(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MarkerInputError("syntax", "datagram is not UTF-8") from None
    mac: str | None = None
    signed = data
    cut = data.rfind(MAC_SEPARATOR)
    if cut >= 0:
        signed = data[:cut]
        mac = data[cut + len(MAC_SEPARATOR):].decode("ascii", "replace")
        if len(mac) != 64 or not all(c in "0123456789abcdefABCDEF" for c in mac):
            raise MarkerInputError("syntax", "mac must be the last field, 64 hex digits")
        text = signed.decode("utf-8")
    tokens = [t for t in text.split(" ") if t]
    if not tokens:
        raise MarkerInputError("syntax", "empty message")
    verb = tokens[0]
    if verb not in VERBS:
        raise MarkerInputError("syntax", f"unknown verb {verb[:32]!r}")
    rest = tokens[1:]
    name: str | None = None
    if verb in NAMED_VERBS:
        if not rest or "=" in rest[0]:
            raise MarkerInputError("syntax", f"{verb} needs a name")
        name = rest.pop(0)
        if not wire.is_name(name):
            raise MarkerInputError("syntax", "name must be 1-128 chars of [A-Za-z0-9._:/-]")
    tags: dict[str, str] = {}
    reserved: dict[str, str] = {}
    for token in rest:
        key, sep, raw = token.partition("=")
        if not sep:
            raise MarkerInputError("syntax", f"expected key=value, got {token[:64]!r}")
        if key in reserved or key in tags:
            raise MarkerInputError("syntax", f"duplicate key {key[:64]!r}")
        if key == "mac":
            raise MarkerInputError("syntax", "mac must be the last field, 64 hex digits")
        if key in ("phase", "meter", "ts", "id"):
            reserved[key] = decode_value(raw)
            continue
        value = decode_value(raw)
        if verb in FIELD_VERBS:  # result / sample: numeric fields (SPEC 9.2, 9.3)
            check_field(verb, key, value)
        else:
            check_tag_key(key)
        tags[key] = value
    if verb in FIELD_VERBS:
        if len(tags) > MAX_FIELD_KEYS:
            raise MarkerInputError("syntax", f"at most {MAX_FIELD_KEYS} {verb} keys")
    elif len(tags) > MAX_USER_TAGS:
        raise MarkerInputError("syntax", f"at most {MAX_USER_TAGS} user tags")
    if verb not in NAMED_VERBS and (tags or "phase" in reserved or "meter" in reserved):
        raise MarkerInputError("syntax", f"{verb} takes no name, tags, phase or meter")
    ts_ns: int | None = None
    if "ts" in reserved:
        ts_text = reserved["ts"]
        if not ts_text.isascii() or not ts_text.isdigit() or len(ts_text) > _MAX_TS_DIGITS:
            raise MarkerInputError("syntax", "ts must be integer ns since the Unix epoch")
        ts_ns = int(ts_text)
    return MarkerMessage(verb=verb, name=name, tags=tags, phase=reserved.get("phase"),
                         meter=reserved.get("meter"), ts_ns=ts_ns, msg_id=reserved.get("id"),
                         mac=mac, signed=signed)


def send(event: ReplyEvent) -> bytes:
    """The reply datagram for ``event``."""
    if isinstance(event, Refused):
        return format_error(event.code, event.detail, event.msg_id)
    if isinstance(event, StatusAnswered):
        return format_status(event.status, event.msg_id)
    if isinstance(event, Pong):
        return format_ok("ping", None, [("t_ns", event.t_ns)], event.msg_id)
    if isinstance(event, RunOpened):
        fields: list[tuple[str, object]] = [("start_ns", event.start_ns)]
        if event.skew_ms is not None:
            fields.append(("skew_ms", round(event.skew_ms, 3)))
        return format_ok("start", event.name, fields, event.msg_id)
    if isinstance(event, PhaseOpened):
        return format_ok("start", event.name, [("start_ns", event.start_ns)], event.msg_id)
    if isinstance(event, EventRecorded):
        return format_ok("event", event.name, [], event.msg_id)
    if isinstance(event, Aborted):
        return format_ok("abort", event.name, [], event.msg_id)
    if isinstance(event, ResultAccepted):
        return format_ok("result", event.name, [], event.msg_id)
    if isinstance(event, Unanswered):
        return b""  # a sample: nothing is sent
    return format_ok("stop", event.name, _stop_fields(event), event.msg_id)


def _stop_fields(event: RunClosed) -> list[tuple[str, object]]:
    result = event.result
    fields: list[tuple[str, object]] = []
    if event.phase is not None:
        fields.append(("phase", event.phase))
    # A sum missing a meter is left out, never sent as 0 (the meters are in no_readings).
    fields += [(key, value) for key, value in (("energy_j", result.energy_j),
                                               ("duration_s", result.duration_s),
                                               ("mean_w", result.mean_w),
                                               ("max_w", result.max_w)) if value is not None]
    fields.append(("samples", result.samples))
    if result.counter_energy_j is not None:
        fields.append(("counter_energy_j", result.counter_energy_j))
    if result.extrapolated_s > 0:
        fields.append(("extrapolated_s", result.extrapolated_s))
    if result.gap_s > 0:
        fields.append(("gap_s", result.gap_s))
    fields += [(f"energy_j.{meter}", energy_j) for meter, energy_j in result.per_meter_j]
    if result.no_readings:
        fields.append(("no_readings", wire.join_meters(result.no_readings)))
    if result.clock_step:
        fields.append(("clock_step", "true"))
    return fields
