"""What both database sinks share: one worker thread per sink for blocking HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from wattd.config import InfluxConfig


class ThreadedSink:
    """A sink whose ``_post`` blocks: ``write`` runs it in the sink's own thread,
    ``write_blocking`` in the caller's (the delivery loop's worker job)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self._cfg = cfg
        self._name = cfg.sink_name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{self._name}")

    @property
    def name(self) -> str:
        return self._name

    @property
    def url(self) -> str:
        return self._cfg.url

    def _post(self, lines: Sequence[bytes]) -> None:
        raise NotImplementedError

    def write_blocking(self, lines: Sequence[bytes]) -> None:
        """`write` in the calling thread: the delivery loop sends, saves its cursor
        and reads the next batch in one worker job (one event-loop hop per batch)."""
        if lines:
            self._post(lines)

    async def write(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._post, lines)
