"""Plug the marker service into the daemon (one call from ``Daemon.__init__``)."""

from __future__ import annotations

from typing import Any

from wattd.markers.multicast import install_multicast
from wattd.markers.server import MarkerService


def install_markers(daemon: Any) -> MarkerService:
    """Build the marker service from ``config.markers``; it replaces the
    pipeline's pass-through stage (hold-back + run tagging), answers
    ``status`` with the daemon's status, reopens open runs from the journal
    and listens once the journal is open (start-up hook)."""
    cfg = daemon.cfg
    clock_service = getattr(daemon, "clock_service", None)
    service = MarkerService(
        cfg.markers, [m.name for m in cfg.meters], daemon.journal, clock=daemon.clock,
        status_provider=daemon.status,
        clock_step=getattr(clock_service, "stepped_between", None),
        journal_dir=str(daemon.journal.dir))
    daemon.pipeline.stage = service
    daemon.add_status("markers", service.status)
    daemon.startup_hooks.append(service.start)
    daemon.shutdown_hooks.append(service.stop)
    # SPEC 10: join markers.multicast (if set) once listening; replies from a socket of our own.
    install_multicast(daemon, service)
    return service
