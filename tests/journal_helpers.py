"""Shared by the journal and pipeline tests: a hand-moved monotonic clock, a
journal line, and an async wait for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class FakeTime:
    """A monotonic clock (seconds) that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def power_line(i: int) -> str:
    return f"wattd_power,meter=a power_w={i}.5 {1_700_000_000_000_000_000 + i}"


async def until(predicate: Callable[[], object], timeout_s: float = 5.0,
                interval_s: float = 0.01) -> None:
    """Wait until `predicate()` is true; AssertionError after `timeout_s`."""
    for _ in range(int(timeout_s / interval_s)):
        if predicate():
            return
        await asyncio.sleep(interval_s)
    raise AssertionError("condition not reached")
