"""The one small interface every database sink implements, and how failures are classified.

A sink only moves a batch of line-protocol lines to a database and says how it
went; retrying, bisecting and cursors belong to the delivery loop
(`wattd.sinks.delivery`), so every database gets the same durability.
"""

from __future__ import annotations

import email.utils
import gzip
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from wattd.errors import SinkError

RETRY_AFTER_MAX_S = 600.0


class SinkUnavailableError(SinkError):
    """Network failure, timeout or 5xx/429: retry later; the journal keeps the data."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class SinkAuthError(SinkError):
    """401/403: credentials are wrong or lack write permission; retried slowly."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class SinkConfigError(SinkError):
    """Another 4xx (404 database/bucket not found, ...): retried slowly, data kept."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class SinkRejectedError(SinkError):
    """400/413/422: the database refused the points of this batch; bisect to find them."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Sink(Protocol):
    """Write a batch of line-protocol lines (UTF-8 bytes exactly as journaled, no
    trailing newlines); close once. An item may hold several lines joined by
    newlines (the delivery loop passes journal blocks as they are read): the body
    is the items joined by newlines, so a sink never splits them.

    `write` returns only when the database acknowledged every line, and raises
    one of the SinkError subclasses above otherwise.
    """

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    async def write(self, lines: Sequence[bytes]) -> None: ...

    async def reload_credentials(self) -> None: ...

    async def close(self) -> None: ...


def encode_body(lines: Sequence[bytes], *, use_gzip: bool) -> bytes:
    """The request body: one line per point, newline-terminated, optionally gzipped.

    gzip level 1: line protocol still shrinks ~8x and it costs a fraction of level 6's CPU
    (the drain rate of a large backlog is CPU-bound on a Pi).
    """
    body = b"\n".join(lines) + b"\n"
    return gzip.compress(body, compresslevel=1, mtime=0) if use_gzip else body


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), capped; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


_REASON_PATTERNS = (
    ("field_type_conflict", re.compile(r"field type conflict", re.IGNORECASE)),
    ("unable_to_parse", re.compile(r"unable to parse|bad timestamp|invalid", re.IGNORECASE)),
    ("points_beyond_retention", re.compile(r"beyond retention", re.IGNORECASE)),
    ("max_series", re.compile(r"max-series|max-values", re.IGNORECASE)),
    ("too_large", re.compile(r"too large", re.IGNORECASE)),
)


def rejection_reason(status: int, body: str) -> str:
    """A short counter name for why the database refused points."""
    for reason, pattern in _REASON_PATTERNS:
        if pattern.search(body):
            return reason
    return "too_large" if status == 413 else f"http_{status}"


def classify_http(status: int, body: bytes | str, headers: Mapping[str, str],
                  *, what: str) -> SinkError | None:
    """Map an HTTP answer to None (acknowledged) or the SinkError to raise. Pure."""
    if 200 <= status < 300:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()[:500]
    lower = {k.lower(): v for k, v in headers.items()}
    message = f"{what}: HTTP {status} {text}".rstrip()
    if status in (401, 403):
        return SinkAuthError(message, status=status)
    if status in (400, 413, 422):
        return SinkRejectedError(message, status=status, reason=rejection_reason(status, text))
    if status == 429 or status >= 500:
        return SinkUnavailableError(message, status=status,
                               retry_after_s=parse_retry_after(lower.get("retry-after")))
    return SinkConfigError(message, status=status)
