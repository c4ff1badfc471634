"""What the daemon needs of each part it runs: start, stop, status.

Components live in the layers below the daemon (journal, clock, markers,
sources, sinks) and do not import this module: they match the protocol by
shape, and ``wattd.daemon.app`` is where mypy checks that they do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Protocol


class Component(Protocol):
    async def start(self) -> None:
        """Begin work; return once the component is ready for the ones started after it."""

    async def stop(self) -> None:
        """Finish work (write or hand on what it holds); called once, only after a
        successful start (a start that fails cleans up after itself)."""

    def status(self) -> Mapping[str, object]:
        """A JSON-ready snapshot for ``wattd status``; cheap, never blocks."""


# How a component runs a long-lived task under the daemon's supervision: the task is
# named, and if it fails the daemon logs it and stops (``Daemon.start_task``).
Spawn = Callable[[str, Coroutine[object, object, None]], "asyncio.Task[None]"]
