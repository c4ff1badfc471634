"""Run tagging with hold-back: the pipeline's reading stage while markers run.

Every reading is pushed to the run engine at once (its energy counts from
the moment it is decoded), then held back ``holdback`` so a marker
back-dated by up to the skew limit still tags it, and released tagged with
the run (and phase) open at its time. Pure: the caller gives the time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from wattd.markers.engine import RunEngine
from wattd.readings import Reading


class RunTagger:
    """A :class:`~wattd.daemon.pipeline.ReadingStage`. ``on_completions`` is
    called when a pushed reading completed a stop (its reply can go)."""

    def __init__(self, engine: RunEngine, *,
                 on_completions: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self._on_completions = on_completions
        self._held: dict[str, deque[Reading]] = {m: deque() for m in engine.meters}

    def holdback_ns(self, meter: str) -> int:
        settings = self.engine.settings
        if settings.holdback_ns is not None:
            return settings.holdback_ns
        return settings.skew_limit_ns + int(self.engine.period_ns(meter))

    def push(self, reading: Reading) -> None:
        engine = self.engine
        engine.push(reading)
        held = self._held.get(reading.meter)
        if held is None:
            held = self._held[reading.meter] = deque()
        held.append(reading)
        if engine.has_completions and self._on_completions is not None:
            self._on_completions()

    def pop_ready(self, now_boot_ns: int) -> list[Reading]:
        out: list[Reading] = []
        tag = self.engine.tag
        for meter, held in self._held.items():
            limit = now_boot_ns - self.holdback_ns(meter)
            while held and held[0].t_boot_ns <= limit:
                out.append(tag(held.popleft()))
            self.engine.forget_tags_before(meter, held[0].t_ns if held else None)
        return out

    def flush_all(self) -> list[Reading]:
        out: list[Reading] = []
        for held in self._held.values():
            while held:
                out.append(self.engine.tag(held.popleft()))
        return out

    @property
    def held_readings(self) -> int:
        return sum(len(held) for held in self._held.values())
