"""What the smart-plug cores share: an HTTP answer checked and parsed as JSON (pure)."""

from __future__ import annotations

import json
import math
from typing import Any

from wattd.protocols.base import DecodeCounters, DecodeError
from wattd.protocols.polled import count_error


def parse_answer(counters: DecodeCounters, driver: str, status: int, body: bytes,
                 t_ns: int) -> Any | DecodeError:
    """The JSON value of a 200 answer; 401/403 are ``auth`` errors, other statuses
    ``http_status``, a body that is not JSON ``garbage`` (all counted)."""
    if status in (401, 403):
        return count_error(counters, driver, "auth", f"HTTP {status}: wrong or missing "
                           "username / password_file", t_ns)
    if status != 200:
        return count_error(counters, driver, "http_status", f"HTTP {status}", t_ns)
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return count_error(counters, driver, "garbage",
                           f"answer is not JSON: {body[:60]!r}", t_ns)


def number(value: Any) -> float | None:
    """A finite JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def get_path(value: Any, *keys: str | int) -> Any:
    """``value[k0][k1]...`` or None when any step is missing or of the wrong type."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(value, list) or not -len(value) <= key < len(value):
                return None
        elif not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value
