"""Reconnect logic for a port that comes and goes (USB unplug): state, backoff, clean stop.

Each state change is logged once: ``connected`` (info), ``lost`` (warning),
``retrying`` (warning, on the first failed attempt of a series; later
failures of the same series log at debug only).
"""

from __future__ import annotations

import asyncio
import random
from enum import StrEnum
from typing import Any

import structlog

from wattd.backoff import Backoff


class LinkState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    RETRYING = "retrying"
    STOPPED = "stopped"


class Reconnector:
    """A port's link state and its retry delays (a Backoff: 0.5 s doubling to 30 s
    by default, reset on connect), with a clean stop that cuts a wait short."""

    def __init__(self, name: str, *, initial_s: float = 0.5, max_s: float = 30.0,
                 factor: float = 2.0, jitter: float = 0.2, rng: random.Random | None = None,
                 log: Any = None) -> None:
        self.name = name
        self.backoff = Backoff(initial_s, max_s, factor, jitter,
                               rng=(rng or random.Random()).random)  # noqa: S311 - jitter
        self.state = LinkState.CONNECTING
        self.reconnects = 0  # successful connections after the first
        self.failures = 0  # failed attempts in the current series
        self.last_error = ""
        self._ever_connected = False
        self._stopped = asyncio.Event()
        self._log = log or structlog.get_logger("wattd.sources")

    def connected(self) -> None:
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.failures = 0
        self.backoff.reset()
        self._set(LinkState.CONNECTED)
        self._log.info("meter port connected", meter=self.name, reconnects=self.reconnects)

    def lost(self, reason: str) -> None:
        self.last_error = reason
        if self.state is LinkState.CONNECTED:
            self._set(LinkState.LOST)
            self._log.warning("meter port lost", meter=self.name, reason=reason)

    def failed(self, reason: str) -> None:
        """An open attempt failed."""
        self.failures += 1
        self.last_error = reason
        if self.state is not LinkState.RETRYING:
            self._set(LinkState.RETRYING)
            self._log.warning("meter port unavailable, retrying", meter=self.name,
                              reason=reason, retry_in_s=round(self.backoff.base_delay_s, 2))
        else:
            self._log.debug("meter port still unavailable", meter=self.name, reason=reason,
                            failures=self.failures)

    def next_delay_s(self) -> float:
        return self.backoff.next_delay()

    async def wait(self) -> bool:
        """Sleep the backoff delay; False once stopped (then do not retry)."""
        if self._stopped.is_set():
            return False
        try:
            await asyncio.wait_for(self._stopped.wait(), self.next_delay_s())
        except TimeoutError:
            return True
        return False

    def stop(self) -> None:
        self._stopped.set()
        self._set(LinkState.STOPPED)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _set(self, state: LinkState) -> None:
        if self.state is not LinkState.STOPPED:
            self.state = state
