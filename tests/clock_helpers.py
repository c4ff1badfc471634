"""Test doubles shared by the clock tests: a hand-moved clock and a recording logger."""

from __future__ import annotations

from typing import Any

S = 1_000_000_000


class FakeClock:
    """realtime = boottime + offset; tests move both by hand."""

    def __init__(self) -> None:
        self.boot = 1_000 * S
        self.offset = 1_700_000_000 * S

    def realtime_ns(self) -> int:
        return self.boot + self.offset

    def boottime_ns(self) -> int:
        return self.boot

    def advance(self, ns: int) -> None:
        self.boot += ns


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        def log(event: str, **kw: Any) -> None:
            self.events.append((level, event, kw))
        return log

    def names(self) -> list[str]:
        return [e[1] for e in self.events]
