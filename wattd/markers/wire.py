"""Marker wire format (SPEC 2), the import-light half: constants, value
percent-encoding, message formatting, HMAC signing and the reply format.

This module is on the path of ``wattd mark`` and ``wattd.run``, which run
inside benchmark loops, so it imports nothing beyond what the interpreter
has already loaded at start-up (``re``); ``hmac``/``hashlib`` and ``json``
are imported only when a secret or a status reply needs them. The message
parser with its dataclass lives in :mod:`wattd.markers.protocol`.
"""

from __future__ import annotations

from wattd.errors import MarkerInputError
from wattd.secretfile import read_secret as read_secret  # noqa: PLC0414 - the server's re-export

TYPE_CHECKING = False  # not typing's: importing typing costs the mark path milliseconds
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

DEFAULT_PORT = 9288
MAX_DATAGRAM_BYTES = 1024
MAX_VALUE_BYTES = 256
MAX_USER_TAGS = 16

VERBS = ("start", "stop", "abort", "event", "status", "ping", "result", "sample")
NAMED_VERBS = frozenset(("start", "stop", "abort", "event", "result", "sample"))
# Verbs whose keys are numeric fields, not user tags (SPEC 9.2, 9.3).
FIELD_VERBS = frozenset(("result", "sample"))
# Fire-and-forget verbs: never answered, not even with an error (SPEC 9.3).
SILENT_VERBS = frozenset(("sample",))
MAX_FIELD_KEYS = 32
RESERVED_KEYS = ("phase", "meter", "ts", "id", "mac")
# Tag and field names of SPEC 3, refused as user tag keys (a user tag would
# collide with them in the database). `phase` and `meter` are reserved keys.
SCHEMA_NAMES = frozenset((
    "meter", "run", "phase", "verb", "source", "text", "skew_ms",
    "power_w", "voltage_v", "current_a", "apparent_va", "power_factor", "energy_j",
    "clock_synced", "duration_s", "mean_w", "min_w", "max_w", "samples", "start_ns",
    "counter_energy_j", "gap_s", "extrapolated_s", "aborted", "clock_step", "no_readings",
))
# The one text-valued key each field verb may carry (a tag of its point).
FIELD_TEXT_KEYS = {"result": "tool", "sample": "target"}
# Tag names of wattd_result / wattd_latency / wattd_cpu, refused as field keys.
FIELD_SCHEMA_NAMES = frozenset(("run", "source", "tool", "q", "host", "target", "phase",
                                "meter", "run_start_ns", "time"))
ERROR_CODES = ("syntax", "auth", "stale", "busy", "unknown", "rate")

# Character classes as sets, not regexes: compiling a regex costs the mark
# path milliseconds at every start.
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NAME_CHARS = frozenset(_LETTERS + "0123456789._:/-")
_KEY_FIRST = frozenset(_LETTERS + "_")
_KEY_CHARS = frozenset(_LETTERS + "0123456789_")
_FIELD_KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz")
_FIELD_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_NUMBER_CHARS = frozenset("0123456789.-+eE")
MAC_SEPARATOR = b" mac="

# Bytes written as themselves; everything else (space, '=', '%', controls,
# DEL, non-ASCII) is percent-encoded, so a formatted value is plain ASCII.
_SAFE = frozenset(b"!\"#$&'()*+,-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                  b"abcdefghijklmnopqrstuvwxyz{|}~")
_HEX = frozenset("0123456789abcdefABCDEF")


def is_control(ch: str) -> bool:
    """Unicode category Cc: C0 controls, DEL and C1 controls."""
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0


def encode_value(value: str) -> str:
    """Percent-encode (RFC 3986, upper-case hex) a value for the wire."""
    raw = value.encode("utf-8")
    if all(b in _SAFE for b in raw):
        return value
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)


def decode_value(text: str) -> str:
    """Reverse of :func:`encode_value`; raw printable characters pass through.

    Raises MarkerInputError('syntax') on a bad escape, invalid UTF-8 after
    decoding, a control character, or a length outside 1..256 bytes."""
    if "%" in text:
        out = bytearray()
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "%":
                pair = text[i + 1:i + 3]
                if len(pair) != 2 or not all(c in _HEX for c in pair):
                    raise MarkerInputError("syntax", "bad percent escape")
                out.append(int(pair, 16))
                i += 3
            else:
                out += ch.encode("utf-8")
                i += 1
        try:
            value = out.decode("utf-8")
        except UnicodeDecodeError:
            raise MarkerInputError("syntax", "value is not UTF-8 after decoding") from None
        size = len(out)
    else:
        value = text
        size = len(text.encode("utf-8"))
    _check_decoded(value, size)
    return value


def _check_decoded(value: str, size: int) -> None:
    if not 1 <= size <= MAX_VALUE_BYTES:
        raise MarkerInputError("syntax", f"value must be 1-{MAX_VALUE_BYTES} bytes")
    if any(is_control(c) for c in value):
        raise MarkerInputError("syntax", "control character in value")


def check_value(value: str) -> None:
    """Refuse a (decoded) value the parser would refuse."""
    _check_decoded(value, len(value.encode("utf-8")))


def is_name(name: str) -> bool:
    """Run name: 1-128 chars of [A-Za-z0-9._:/-]."""
    return 1 <= len(name) <= 128 and all(c in _NAME_CHARS for c in name)


def is_key(key: str) -> bool:
    """Key: [A-Za-z_][A-Za-z0-9_]{0,63}."""
    return (1 <= len(key) <= 64 and key[0] in _KEY_FIRST
            and all(c in _KEY_CHARS for c in key))


def check_tag_key(key: str) -> None:
    """Refuse a user tag key per SPEC 2 (MarkerInputError 'syntax')."""
    if not is_key(key):
        raise MarkerInputError("syntax", f"bad key {key[:64]!r}")
    if key == "time" or key.startswith("_"):
        raise MarkerInputError("syntax", f"key {key!r} is not allowed")
    if key in SCHEMA_NAMES or key in RESERVED_KEYS:
        raise MarkerInputError("syntax", f"key {key!r} is a reserved or schema name")


def check_field_key(verb: str, key: str) -> None:
    """Refuse a result/sample key per SPEC 9.2: ``[a-z][a-z0-9_]{0,63}``,
    no reserved key, no tag name of the measurement it goes to."""
    if not (1 <= len(key) <= 64 and key[0] in _FIELD_KEY_FIRST
            and all(c in _FIELD_KEY_CHARS for c in key)):
        raise MarkerInputError("syntax", f"bad {verb} key {key[:64]!r}: [a-z][a-z0-9_]{{0,63}}")
    if key == FIELD_TEXT_KEYS.get(verb):
        return
    if key in RESERVED_KEYS or key in FIELD_SCHEMA_NAMES:
        raise MarkerInputError("syntax", f"key {key!r} is a reserved or tag name")


def check_field_number(key: str, text: str) -> float:
    """A finite decimal number (``12``, ``-0.5``, ``1.5e3``); MarkerInputError otherwise."""
    if not text or not all(c in _NUMBER_CHARS for c in text):
        raise MarkerInputError("syntax", f"{key}={text[:32]!r} is not a decimal number")
    try:
        value = float(text)
    except ValueError:
        raise MarkerInputError("syntax", f"{key}={text[:32]!r} is not a decimal number") from None
    if value - value != 0.0:  # inf (nan cannot be spelt with these characters)
        raise MarkerInputError("syntax", f"{key}={text[:32]!r} is not finite")
    return value


def check_field(verb: str, key: str, value: str) -> None:
    """One key=value of a result/sample message (the value already decoded)."""
    check_field_key(verb, key)
    if key != FIELD_TEXT_KEYS.get(verb):
        check_field_number(key, value)


def format_number(value: float) -> str:
    """A field value for the wire: shortest repr that round-trips, never inf/nan."""
    text = repr(float(value))
    check_field_number("value", text)
    return text


def format_message(verb: str, name: str | None = None, *,
                   tags: Mapping[str, str] | None = None, phase: str | None = None,
                   meter: str | None = None, ts_ns: int | None = None,
                   msg_id: str | None = None, secret: bytes | None = None,
                   mac: str | None = None) -> bytes:
    """Build one datagram (no trailing newline). With ``secret`` the HMAC is
    computed and appended; ``mac`` appends a given one (tests)."""
    if verb not in VERBS:
        raise MarkerInputError("syntax", f"unknown verb {verb!r}")
    parts = [verb]
    if verb in NAMED_VERBS:
        if name is None or not is_name(name):
            raise MarkerInputError("syntax", f"bad name {name!r}")
        parts.append(name)
    elif name is not None:
        raise MarkerInputError("syntax", f"{verb} takes no name")
    items: list[tuple[str, str]] = []
    fields = verb in FIELD_VERBS
    for key, value in (tags or {}).items():
        if fields:
            check_field(verb, key, str(value))
        else:
            check_tag_key(key)
        items.append((key, str(value)))
    limit = MAX_FIELD_KEYS if fields else MAX_USER_TAGS
    if len(items) > limit:
        raise MarkerInputError("syntax", f"at most {limit} {'keys' if fields else 'tags'}")
    for key, opt in (("phase", phase), ("meter", meter), ("id", msg_id)):
        if opt is not None:
            items.append((key, opt))
    if ts_ns is not None:
        items.append(("ts", str(int(ts_ns))))
    for key, value in items:
        check_value(value)  # same refusals as the parser (control chars, length)
        parts.append(f"{key}={encode_value(value)}")
    data = " ".join(parts).encode("ascii")
    if secret is not None:
        data += MAC_SEPARATOR + sign(secret, data).encode("ascii")
    elif mac is not None:
        data += MAC_SEPARATOR + mac.encode("ascii")
    if len(data) > MAX_DATAGRAM_BYTES:
        raise MarkerInputError("syntax", f"message longer than {MAX_DATAGRAM_BYTES} bytes")
    return data


def sign(secret: bytes, signed: bytes) -> str:
    """Hex HMAC-SHA256 of the datagram bytes before " mac="."""
    import hashlib
    import hmac

    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def verify(secret: bytes, signed: bytes, mac_hex: str) -> bool:
    import hmac

    return hmac.compare_digest(sign(secret, signed), mac_hex.lower())


# --------------------------------------------------------------------------- replies


def _format_number(value: float | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return f"{value:.9g}"


def format_ok(verb: str, name: str | None = None,
              fields: Iterable[tuple[str, object]] = (), msg_id: str | None = None) -> bytes:
    """``ok <verb> [<name>] [key=value ...] [id=<id>]``."""
    parts = ["ok", verb]
    if name is not None:
        parts.append(name)
    for key, value in fields:
        text = _format_number(value) if isinstance(value, int | float) else str(value)
        parts.append(f"{encode_value(key)}={encode_value(text)}")
    if msg_id is not None:
        parts.append(f"id={encode_value(msg_id)}")
    return " ".join(parts).encode("ascii")


def format_error(code: str, text: str, msg_id: str | None = None) -> bytes:
    """``error <code> <text> [id=<id>]``; the text is made one printable ASCII line."""
    clean = "".join(c if " " <= c < "\x7f" else "?" for c in text).strip() or code
    out = f"error {code} {clean[:400]}"
    if msg_id is not None:
        out += f" id={encode_value(msg_id)}"
    return out.encode("ascii")


def format_status(status: Mapping[str, object], msg_id: str | None = None) -> bytes:
    """``ok status {json}``; the request's id is echoed inside the object."""
    import json

    obj = dict(status)
    if msg_id is not None:
        obj["id"] = msg_id
    return b"ok status " + json.dumps(obj, separators=(",", ":"), default=str).encode("utf-8")


class Reply:
    """A parsed reply. ``fields`` hold the decoded key=value pairs of an ok reply."""

    __slots__ = ("code", "fields", "msg_id", "name", "ok", "status", "text", "verb")

    def __init__(self, *, ok: bool, verb: str | None = None, name: str | None = None,
                 fields: dict[str, str] | None = None, code: str | None = None,
                 text: str = "", msg_id: str | None = None,
                 status: dict[str, Any] | None = None) -> None:
        self.ok = ok
        self.verb = verb
        self.name = name
        self.fields = fields if fields is not None else {}
        self.code = code
        self.text = text
        self.msg_id = msg_id
        self.status = status

    def __repr__(self) -> str:
        if self.ok:
            return f"Reply(ok {self.verb} {self.name} {self.fields} id={self.msg_id})"
        return f"Reply(error {self.code} {self.text!r} id={self.msg_id})"

    def number(self, key: str) -> float:
        return float(self.fields[key])

    @property
    def no_readings(self) -> list[str]:
        """The meters a ``stop`` reply names in ``no_readings=`` (no energy)."""
        return split_meters(self.fields.get("no_readings", ""))


def join_meters(meters: Iterable[str]) -> str:
    """Meter names as one reply value, comma-separated (a comma or ``%`` in a
    name is percent-encoded within the list)."""
    return ",".join(m.replace("%", "%25").replace(",", "%2C") for m in meters)


def split_meters(text: str) -> list[str]:
    """The inverse of :func:`join_meters`."""
    out = []
    for item in text.split(","):
        if item:
            try:
                out.append(decode_value(item))
            except MarkerInputError:
                out.append(item)  # a damaged escape: the name as sent
    return out


def parse_reply(data: bytes) -> Reply:
    """Parse a reply datagram; raises MarkerInputError('syntax') only."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MarkerInputError("syntax", "reply is not UTF-8") from None
    text = text.rstrip("\r\n")
    if text.startswith("ok status "):
        import json

        try:
            obj = json.loads(text[len("ok status "):])
        except ValueError:
            raise MarkerInputError("syntax", "status reply is not JSON") from None
        if not isinstance(obj, dict):
            raise MarkerInputError("syntax", "status reply is not a JSON object")
        msg_id = obj.get("id")
        return Reply(ok=True, verb="status", status=obj,
                     msg_id=msg_id if isinstance(msg_id, str) else None)
    tokens = [t for t in text.split(" ") if t]
    if len(tokens) < 2:
        raise MarkerInputError("syntax", "short reply")
    if tokens[0] == "error":
        msg_id = None
        if len(tokens) > 2 and tokens[-1].startswith("id="):
            msg_id = decode_value(tokens[-1][3:])
            tokens = tokens[:-1]
        return Reply(ok=False, code=tokens[1], text=" ".join(tokens[2:]), msg_id=msg_id)
    if tokens[0] != "ok":
        raise MarkerInputError("syntax", "reply is neither ok nor error")
    verb = tokens[1]
    rest = tokens[2:]
    name = None
    if rest and "=" not in rest[0]:
        name = rest.pop(0)
    fields: dict[str, str] = {}
    for token in rest:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise MarkerInputError("syntax", f"bad reply field {token[:64]!r}")
        fields[decode_value(key)] = decode_value(value)
    msg_id = fields.pop("id", None)
    return Reply(ok=True, verb=verb, name=name, fields=fields, msg_id=msg_id)
