"""The marker service: turns datagrams into run-engine calls and engine
events into reply datagrams, under the security rules of SPEC 2 (allow
list, HMAC, ts window, replay, rate limit) and de-duplication; writes what
the engine decided to the journal before it answers.

Whatever arrives, :meth:`MarkerService.on_datagram` never raises: a datagram
is answered or dropped as SPEC 2 says, counted, and logged (logs themselves
are limited to a few lines a second, so a flood cannot flood the log).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from wattd.clock.timesource import SYSTEM_CLOCK, Clock, clock_pair
from wattd.config import MarkersConfig
from wattd.energy import NS
from wattd.errors import MarkerInputError
from wattd.logsetup import get_logger
from wattd.markers import wire
from wattd.markers.closing import Completion
from wattd.markers.engine import RunEngine
from wattd.markers.events import (
    Notice,
    Refused,
    ReplyEvent,
    SourceAddress,
    StatusAnswered,
    StatusAsked,
    Unanswered,
)
from wattd.markers.limits import DedupCache, Handled, LogLimiter, RateLimiter
from wattd.markers.multicast import MulticastEndpoint, check_multicast
from wattd.markers.port import AllowList, UdpPort, check_listen, open_port
from wattd.markers.protocol import MarkerMessage, parse_message, send

log = get_logger("wattd.markers")

TICK_S = 0.05
IDLE_TICK_S = 1.0

StatusFn = Callable[[], Mapping[str, object]]
# Shown the lines the service wrote to the journal, once they are there (e.g. the
# Prometheus last-run energy); it must not raise, and must be cheap.
LinesHook = Callable[[Sequence[str]], None]


class JournalLike(Protocol):
    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None: ...


@dataclass(slots=True)
class _Job:
    lines: list[str]
    reply: bytes | None
    sender: SourceAddress | None
    key: tuple[str, str] | None


class MarkerService:
    """The marker UDP endpoints in front of a :class:`RunEngine`, as one
    daemon component (start / stop / status)."""

    def __init__(self, cfg: MarkersConfig, engine: RunEngine, journal: JournalLike, *,
                 clock: Clock = SYSTEM_CLOCK, status_provider: StatusFn | None = None,
                 journal_dir: str | None = None, on_journaled: LinesHook | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.clock = clock
        self.journal = journal
        self.journal_dir = journal_dir
        self.on_journaled = on_journaled
        self.status_provider = status_provider
        self.secret: bytes | None = wire.read_secret(cfg.secret_file) if cfg.secret_file else None
        self.listen = check_listen(cfg, self.secret)
        self.allow = AllowList(cfg.allow)
        self.auth_window_ns = int(cfg.auth_window_s * NS)
        self.rate = RateLimiter(cfg.rate.per_s, cfg.rate.burst)
        self.dedup = DedupCache(self.auth_window_ns)
        self.counters: dict[str, int] = dict.fromkeys(
            ("datagrams", "replies", "syntax", "auth", "stale", "busy", "unknown", "rate",
             "not_allowed", "duplicates", "internal_errors", "send_errors", "journal_errors"),
            0)
        self._log_limited = LogLimiter()
        self._ports: list[UdpPort] = []
        self._jobs: asyncio.Queue[_Job] | None = None
        # Set by every datagram (the only way a run opens or a stop starts waiting):
        # wakes the ticker, which sleeps while it has nothing to watch.
        self._tick_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.addresses: list[tuple[str, int]] = []
        # markers.multicast (SPEC 10): checked now, joined in start (after the ports).
        self._multicast_at = check_multicast(cfg)
        self.multicast: MulticastEndpoint | None = None
        # Called before the engine sees a marker or a tick (the daemon: sources feed
        # the frames they kept, so the engine sees every reading read before).
        self.before_engine: Callable[[], None] | None = None
        # Called after the engine handled a marker or a tick (the daemon: whether a
        # stop now waits, so sources hand readings over at once).
        self.after_engine: Callable[[], None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self.journal_dir is not None:
            from wattd.markers.restore import reopen_runs

            reopened = reopen_runs(self.engine, self.journal_dir, self.engine.meters,
                                   self.cfg.max_run_s, *clock_pair(self.clock))
            for item in reopened:
                log.info("run_reopened", run=item.run, meter=item.meter, start_ns=item.start_ns)
        self._jobs = asyncio.Queue()
        try:
            for host, port in self.listen:
                opened = open_port(host, port, len(self._ports), self.on_datagram,
                                   self.counters)
                self._ports.append(opened)
                self.addresses.append(opened.address)
            if self._multicast_at is not None:
                # Its sockets are listener len(ports): replies leave by its reply socket.
                self.multicast = MulticastEndpoint(*self._multicast_at, len(self._ports),
                                                   self.on_datagram, self.counters)
                await self.multicast.start()
        except BaseException:
            await self.stop()
            raise
        self._tasks.append(asyncio.ensure_future(self._writer()))
        self._tasks.append(asyncio.ensure_future(self._ticker()))
        log.info("markers_listening", addresses=[f"{h}:{p}" for h, p in self.addresses],
                 auth=self.secret is not None, allow=[str(n) for n in self.allow.networks])

    async def stop(self) -> None:
        for port in self._ports:
            port.close()
        self._ports.clear()
        multicast = self.multicast
        if multicast is not None:
            # The group stops being read first; its reply socket stays open until the
            # waiting stops are answered.
            await multicast.stop_receiving()
        # Answer stops still waiting for their reading (power held from the last one).
        self.engine.answer_pending()
        self.send_completions()
        if self._jobs is not None and self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._jobs.join(), 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if multicast is not None:
            await multicast.close()

    # -- datagrams -------------------------------------------------------------

    def on_datagram(self, data: bytes, sender: SourceAddress) -> None:
        # One clock read decides the cheap refusals; the bracketed pair that
        # stamps a message is read only for a message that gets that far.
        now_boot = self.clock.boottime_ns()
        self.counters["datagrams"] += 1
        self._tick_wake.set()
        source = sender.host
        if self.allow and not self.allow.allows(source):
            self.counters["not_allowed"] += 1  # no reply: do not reflect to strangers
            self._log_limited(now_boot, "marker_source_not_allowed", source=source)
            return
        accepted, answer = self.rate.allow(source, now_boot)
        if not accepted:
            self.counters["rate"] += 1
            if answer and not data.startswith(b"sample "):  # samples are never answered
                self._send(send(Refused("rate", "rate limit exceeded")), sender)
                self._log_limited(now_boot, "marker_rate_limited", source=source)
            return
        recv_rt, now_boot = clock_pair(self.clock)
        try:
            msg = parse_message(data)
            self._authenticate(msg, recv_rt)
        except MarkerInputError as exc:
            self._count_refusal(now_boot, source, exc.reason, detail=exc.detail)
            # a sample is fire-and-forget (SPEC 9.3): refused and counted, never answered
            if not data.startswith(b"sample "):
                self._send(send(Refused(exc.reason, exc.detail)), sender)
            return
        if self.before_engine is not None:
            self.before_engine()
        key = (source, msg.msg_id) if msg.msg_id is not None else None
        if key is not None:
            seen = self.dedup.get(key)
            if seen is not None:
                self.counters["duplicates"] += 1
                if seen.reply is not None:
                    self._send(seen.reply, sender)
                else:
                    seen.asked_by(sender)
                return
        outcome = self.engine.handle(msg, sender, recv_rt, now_boot)
        if self.after_engine is not None:
            self.after_engine()
        self._log_notice(outcome.notice)
        event: ReplyEvent | None
        if isinstance(outcome.event, StatusAsked):
            event = StatusAnswered(self.status_json(), msg_id=outcome.event.msg_id)
        else:
            event = outcome.event
        reply = None if event is None else send(event)
        if isinstance(event, Refused):
            assert reply is not None
            self._count_refusal(now_boot, source, event.code,
                                reply=reply.decode("ascii", "replace"))
            if msg.verb in wire.SILENT_VERBS:
                reply = send(Unanswered(msg_id=msg.msg_id))  # a refused sample: counted only
        if outcome.lines or outcome.pending:
            # Remembered as pending: the reply is known (and sent) once the
            # lines are on disk; a retransmission meanwhile changes nothing.
            self._remember(key, None, now_boot, msg, sender)
            self._enqueue(_Job(outcome.lines, reply, sender, key))
        else:
            self._remember(key, reply, now_boot, msg)
            if reply is not None:
                self._send(reply, sender)
        if self.engine.has_completions:
            self.send_completions()

    def _authenticate(self, msg: MarkerMessage, recv_rt: int) -> None:
        if self.secret is None:
            return
        if msg.mac is None or msg.ts_ns is None or msg.msg_id is None:
            raise MarkerInputError("auth", "a signed message needs ts, id and mac (last)")
        if not wire.verify(self.secret, msg.signed, msg.mac):
            raise MarkerInputError("auth", "bad mac")
        if abs(recv_rt - msg.ts_ns) > self.auth_window_ns or msg.ts_ns <= self.dedup.floor_ts_ns:
            raise MarkerInputError("stale", "ts outside the authentication window")

    def _count_refusal(self, now_boot: int, source: str, code: str, **detail: str) -> None:
        self.counters[code] = self.counters.get(code, 0) + 1
        self._log_limited(now_boot, "marker_refused", source=source, code=code, **detail)

    def _remember(self, key: tuple[str, str] | None, reply: bytes | None, now_boot: int,
                  msg: MarkerMessage, sender: SourceAddress | None = None) -> None:
        if key is not None:
            entry = Handled(reply, now_boot)
            if reply is None and sender is not None:
                entry.asked_by(sender)
            self.dedup.put(key, entry, msg.ts_ns)

    def _send(self, reply: bytes, to: SourceAddress) -> None:
        if not reply:  # Unanswered: nothing goes out
            return
        multicast = self.multicast
        if multicast is not None and to.listener == multicast.index:
            sent = multicast.send(reply, to)
        else:
            sent = to.listener < len(self._ports) and self._ports[to.listener].send(reply, to)
        if sent:
            self.counters["replies"] += 1

    def _log_notice(self, notice: Notice | None) -> None:
        if notice is not None:
            self._log_limited(self.clock.boottime_ns(), notice.event, **notice.fields)

    # -- journal writes, then replies -----------------------------------------

    def _enqueue(self, job: _Job) -> None:
        if self._jobs is None:
            return
        self._jobs.put_nowait(job)

    def send_completions(self) -> None:
        """Queue what the engine completed (lines to write, then replies)."""
        for comp in self.engine.take_completions():
            self._log_notice(comp.notice)
            self._enqueue(self._job_for(comp))

    @staticmethod
    def _job_for(comp: Completion) -> _Job:
        if comp.sender is None or comp.event is None:
            return _Job(comp.lines, None, None, None)
        event: ReplyEvent = comp.event
        msg_id = comp.event.msg_id
        key = (comp.sender.host, msg_id) if msg_id is not None else None
        return _Job(comp.lines, send(event), comp.sender, key)

    async def _writer(self) -> None:
        """Write lines durably (one fsync per batch), then send the replies:
        an ok reply means the marker is on disk."""
        assert self._jobs is not None
        jobs = self._jobs
        while True:
            batch = [await jobs.get()]
            while not jobs.empty():
                batch.append(jobs.get_nowait())
            lines = [line for job in batch for line in job.lines]
            try:
                if lines:
                    await self.journal.append(lines, durable=True)
                    if self.on_journaled is not None:
                        self.on_journaled(lines)
            except Exception as exc:  # noqa: BLE001 - keep serving; the reply says so
                self.counters["journal_errors"] += 1
                log.error("marker_journal_write_failed", error=str(exc), lines=len(lines))
            for job in batch:
                if job.reply is not None and job.sender is not None:
                    addrs = [job.sender]
                    seen = self.dedup.get(job.key) if job.key is not None else None
                    if seen is not None:
                        seen.reply = job.reply
                        addrs = seen.addrs or addrs
                        seen.addrs = None
                    for addr in addrs:
                        self._send(job.reply, addr)
                jobs.task_done()

    async def _ticker(self) -> None:
        while True:
            if self._nothing_to_watch():
                # No open run (max_run_s), no waiting stop, no dedup entry to expire:
                # no wake-up until a datagram comes (the daemon's usual state).
                self._tick_wake.clear()
                await self._tick_wake.wait()
            # Fast only while stops wait for a reading: otherwise the tick only serves
            # max_run_s and dedup expiry, which need no better than a second.
            await asyncio.sleep(TICK_S if self.engine.waiting else IDLE_TICK_S)
            try:
                if self.before_engine is not None:
                    self.before_engine()
                now_rt, now_boot = clock_pair(self.clock)
                self.engine.poll(now_rt, now_boot)
                if self.after_engine is not None:
                    self.after_engine()
                self.send_completions()
                self.dedup.expire(now_boot)
            except Exception:  # the ticker survives a bug in one tick
                self.counters["internal_errors"] += 1
                log.exception("marker_tick_failed")

    def _nothing_to_watch(self) -> bool:
        return not (self.engine.waiting or len(self.dedup) or self.engine.open_runs())

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, object]:
        return {"listen": [f"{h}:{p}" for h, p in self.addresses],
                "auth": self.secret is not None, **self.engine.status(),
                "open_runs": self.engine.open_runs(self.clock.boottime_ns()),
                "counters": dict(self.counters), "dedup_entries": len(self.dedup),
                "rate_sources": len(self.rate),
                **({} if self.multicast is None else {"multicast": self.multicast.status()})}

    def status_json(self) -> Mapping[str, object]:
        if self.status_provider is not None:
            try:
                return self.status_provider()
            except Exception as exc:  # noqa: BLE001 - status always answers
                return {"error": str(exc), "markers": self.status()}
        return {"markers": self.status()}
