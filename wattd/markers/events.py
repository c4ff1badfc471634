"""What the run engine decides, as typed values; the UDP edge turns them into
reply datagrams (:func:`wattd.markers.protocol.send`).

Pure data: no sockets, no clock, no wire text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

V4_MAPPED_PREFIX = "::ffff:"

SockAddr = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class SourceAddress:
    """Where a marker came from: the sender's IP address and UDP port, and the
    index of the listening socket that received it (the reply leaves by it)."""

    ip: str
    port: int
    listener: int = 0
    flowinfo: int = 0
    scope_id: int = 0

    @classmethod
    def from_sockaddr(cls, addr: SockAddr, listener: int = 0) -> SourceAddress:
        """From what ``socket.recvfrom`` returns (IPv4 pair or IPv6 4-tuple)."""
        if len(addr) == 4:
            ip, port, flowinfo, scope_id = addr
            return cls(ip, port, listener, flowinfo, scope_id)
        return cls(addr[0], addr[1], listener)

    @property
    def host(self) -> str:
        """The address as markers record it (``source`` tag): a v4-mapped IPv6
        address is shown as IPv4."""
        if self.ip.startswith(V4_MAPPED_PREFIX):
            return self.ip[len(V4_MAPPED_PREFIX):]
        return self.ip

    def sockaddr(self) -> SockAddr:
        if self.flowinfo or self.scope_id:
            return (self.ip, self.port, self.flowinfo, self.scope_id)
        return (self.ip, self.port)


@dataclass(frozen=True, slots=True)
class StopResult:
    """A closed run's (or phase's) energy, summed over its meters.

    A meter no reading measured over the run is named in ``no_readings``
    and has no energy: it is left out of ``per_meter_j``, and the sums
    (``energy_j``, ``mean_w``, ``max_w``, ``counter_energy_j``) are None,
    since a total missing a meter was not measured either."""

    energy_j: float | None
    duration_s: float
    mean_w: float | None
    max_w: float | None
    samples: int
    counter_energy_j: float | None = None
    extrapolated_s: float = 0.0
    gap_s: float = 0.0
    per_meter_j: tuple[tuple[str, float], ...] = ()  # only with several meters
    clock_step: bool = False
    no_readings: tuple[str, ...] = ()  # meters with no energy (no reading measured them)


@dataclass(frozen=True, slots=True)
class _Reply:
    """What a message is answered with; ``msg_id`` echoes the request's id."""

    msg_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class Pong(_Reply):
    """``ping`` answered: the daemon's realtime clock at receive time."""

    t_ns: int


@dataclass(frozen=True, slots=True)
class RunOpened(_Reply):
    """A run opened on its meters at ``start_ns``; ``skew_ms`` is receive minus
    sender time, when the sender gave one."""

    name: str
    start_ns: int
    skew_ms: float | None = None


@dataclass(frozen=True, slots=True)
class PhaseOpened(_Reply):
    """A phase opened inside run ``name`` (closing the run's previous phase)."""

    name: str
    phase: str
    start_ns: int


@dataclass(frozen=True, slots=True)
class EventRecorded(_Reply):
    """An annotation of run ``name`` written to the journal."""

    name: str


@dataclass(frozen=True, slots=True)
class Aborted(_Reply):
    """A run (or phase) closed without a result."""

    name: str


@dataclass(frozen=True, slots=True)
class RunClosed(_Reply):
    """A ``stop`` answered with its result (``phase`` set for a phase stop)."""

    name: str
    phase: str | None
    result: StopResult


@dataclass(frozen=True, slots=True)
class ResultAccepted(_Reply):
    """A ``result`` (load generator figures) journaled against run ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Unanswered(_Reply):
    """Handled, and never answered: a ``sample`` is fire-and-forget (SPEC 9.3)."""


@dataclass(frozen=True, slots=True)
class Refused(_Reply):
    """A message refused with a reply code (``syntax``, ``auth``, ``stale``,
    ``busy``, ``unknown``, ``rate``); it changed nothing."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class StatusAsked(_Reply):
    """``status``: the service answers with the daemon's status."""


@dataclass(frozen=True, slots=True)
class StatusAnswered(_Reply):
    """The ``status`` reply: one JSON object."""

    status: Mapping[str, object]


ReplyEvent = (Pong | RunOpened | PhaseOpened | EventRecorded | Aborted | RunClosed | Refused
              | StatusAnswered | ResultAccepted | Unanswered)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the operator should see in the log (the engine does not log)."""

    event: str
    fields: Mapping[str, object] = field(default_factory=dict)
