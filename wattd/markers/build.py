"""Build the marker components from their config, for the composition root."""

from __future__ import annotations

from collections.abc import Sequence

from wattd.clock.timesource import Clock
from wattd.config import MarkersConfig
from wattd.markers.closing import ClockStepFn
from wattd.markers.engine import EngineSettings, RunEngine
from wattd.markers.server import JournalLike, LinesHook, MarkerService, StatusFn
from wattd.markers.tagger import RunTagger


def build_markers(cfg: MarkersConfig, meters: Sequence[str], journal: JournalLike,
                  clock: Clock, *, status_provider: StatusFn | None = None,
                  clock_step: ClockStepFn | None = None,
                  journal_dir: str | None = None,
                  on_journaled: LinesHook | None = None) -> tuple[MarkerService, RunTagger]:
    """The marker UDP service and the pipeline's run-tagging stage, sharing one
    run engine. ``status_provider`` answers the ``status`` verb (the daemon's
    status); ``clock_step(start_boot_ns, stop_boot_ns)`` flags runs the
    realtime clock stepped inside; with ``journal_dir`` the service reopens,
    when it starts, the runs the journal holds open; ``on_journaled`` is shown
    the lines the service wrote, once written. ``cfg.multicast`` (SPEC 10) makes
    the service join that group too (:mod:`wattd.markers.multicast`)."""
    engine = RunEngine(meters, EngineSettings.from_config(cfg), clock_step=clock_step)
    service = MarkerService(cfg, engine, journal, clock=clock,
                            status_provider=status_provider, journal_dir=journal_dir,
                            on_journaled=on_journaled)
    tagger = RunTagger(engine, on_completions=service.send_completions)
    return service, tagger
