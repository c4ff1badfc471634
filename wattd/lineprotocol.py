"""InfluxDB line protocol: format and parse, pure functions.

The journal stores exactly what a database receives, one point per line,
ns timestamps, so any segment can be POSTed by hand to ``/write``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from wattd.errors import InputError

FieldValue = float | int | bool | str


class LineProtocolError(InputError):
    """A journal or database line that is not valid line protocol."""


@dataclass(slots=True)
class Point:
    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    t_ns: int = 0


_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})


def _escape_key(text: str) -> str:
    return text.replace("\\", "\\\\").translate(_KEY_ESC) if "\\" in text else text.translate(
        _KEY_ESC)


def format_field(value: FieldValue) -> str:
    """One field value as line protocol writes it (ValueError if not finite)."""
    # bool before int: bool is a subclass of int.
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol cannot carry {value!r}")
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def format_line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue],
                t_ns: int) -> str:
    """One line (no trailing newline). Tags are sorted (InfluxDB's preferred order);
    empty tag values are omitted (line protocol cannot carry them)."""
    if not fields:
        raise ValueError("a point needs at least one field")
    head = format_head(measurement, tags)
    body = ",".join(f"{_escape_key(k)}={format_field(v)}" for k, v in fields.items())
    return f"{head} {body} {int(t_ns)}"


def format_head(measurement: str, tags: Mapping[str, str]) -> str:
    """The ``measurement,tag=value,...`` part of a line (escaped, tags sorted,
    empty values omitted), as :func:`format_line` writes it."""
    parts = [measurement.translate(_MEAS_ESC)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue
        parts.append(f",{_escape_key(key)}={_escape_key(value)}")
    return "".join(parts)


def _split_unescaped(text: str, sep: str, *, respect_quotes: bool = False) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    i = 0
    quoted = False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i:i + 2])
            i += 2
            continue
        if respect_quotes and ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(buf))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    if quoted:
        raise LineProtocolError("unterminated_string", text[:80])
    out.append("".join(buf))
    return out


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parse_field(raw: str) -> FieldValue:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise LineProtocolError("bad_field", raw[:80])
        return _unescape(raw[1:-1])
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    try:
        if raw.endswith(("i", "u")):
            return int(raw[:-1])
        value = float(raw)
    except ValueError:
        raise LineProtocolError("bad_field", raw[:80]) from None
    if not math.isfinite(value):
        raise LineProtocolError("bad_field", raw[:80])
    return value


def parse_line(line: str) -> Point:
    """Parse one line; raises LineProtocolError (and only that) on bad input."""
    line = line.rstrip("\r\n")
    if not line or line.startswith("#"):
        raise LineProtocolError("empty", "")
    # Measurement and tags hold no quoted strings (a '"' there is literal);
    # field values may hold quoted spaces.
    head = _split_unescaped(line, " ")
    key_part = head[0]
    rest = line[len(key_part) + 1:] if len(head) > 1 else ""
    sections = [s for s in _split_unescaped(rest, " ", respect_quotes=True) if s != ""]
    if len(sections) not in (1, 2):
        raise LineProtocolError("bad_line", line[:80])
    field_part = sections[0]
    try:
        t_ns = int(sections[1]) if len(sections) == 2 else 0
    except ValueError:
        raise LineProtocolError("bad_timestamp", line[:80]) from None
    key_items = _split_unescaped(key_part, ",")
    measurement = _unescape(key_items[0])
    if not measurement:
        raise LineProtocolError("bad_measurement", line[:80])
    tags: dict[str, str] = {}
    for item in key_items[1:]:
        kv = _split_unescaped(item, "=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineProtocolError("bad_tag", item[:80])
        tags[_unescape(kv[0])] = _unescape(kv[1])
    fields: dict[str, FieldValue] = {}
    for item in _split_unescaped(field_part, ",", respect_quotes=True):
        eq = _find_unescaped_eq(item)
        if eq <= 0:
            raise LineProtocolError("bad_field", item[:80])
        fields[_unescape(item[:eq])] = _parse_field(item[eq + 1:])
    if not fields:
        raise LineProtocolError("bad_field", line[:80])
    return Point(measurement, tags, fields, t_ns)


def _find_unescaped_eq(item: str) -> int:
    i = 0
    while i < len(item):
        if item[i] == "\\":
            i += 2
            continue
        if item[i] == "=":
            return i
        i += 1
    return -1
