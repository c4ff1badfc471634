"""The marker service: UDP endpoints (thin), security (allow list, HMAC,
ts window, replay, rate limit), de-duplication, and the glue between the
pure run engine, the journal and the daemon's reading pipeline.

Whatever arrives, ``datagram_received`` never raises: a datagram is answered
or dropped as SPEC 2 says, counted, and logged (logs themselves are limited
to a few lines a second, so a flood cannot flood the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wattd.clock.timesource import SYSTEM_CLOCK, Clock, clock_pair
from wattd.config import parse_listen
from wattd.energy import NS
from wattd.errors import ConfigError, MarkerInputError
from wattd.logsetup import get_logger
from wattd.markers import wire
from wattd.markers.engine import Completion, EngineSettings, RunEngine
from wattd.markers.protocol import MarkerMessage, parse_message
from wattd.readings import Reading

log = get_logger("wattd.markers")

TICK_S = 0.05
IDLE_TICK_S = 1.0
DEDUP_MAX = 65_536
RATE_SOURCES_MAX = 4_096
ALLOW_CACHE_MAX = 4_096
RECV_BUFFER_BYTES = 1 << 20
RECV_BYTES = wire.MAX_DATAGRAM_BYTES + 1  # a longer datagram arrives cut, and is refused
DRAIN_MAX = 512

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class JournalLike(Protocol):
    async def append(self, lines: Sequence[str], *, durable: bool = False) -> None: ...


# ---------------------------------------------------------------------- config checks


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_listen(cfg: Any, secret: bytes | None) -> list[tuple[str, int]]:
    """Validate ``markers.listen`` against the security rule of SPEC 2."""
    out = []
    for item in cfg.listen:
        try:
            host, port = parse_listen(item)
        except ValueError as exc:
            raise ConfigError(str(exc), key="markers.listen") from None
        if not _is_loopback(host) and secret is None and not cfg.allow:
            raise ConfigError(
                f"listening on non-loopback address {item!r} needs markers.secret_file "
                "or markers.allow (CIDR list): anyone on the network could mark runs",
                key="markers.listen")
        out.append((host, port))
    return out


def parse_allow(items: Sequence[str]) -> list[IPNetwork]:
    nets: list[IPNetwork] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"bad CIDR {item!r}", key="markers.allow") from None
    return nets


# ---------------------------------------------------------------------- bounded state


class RateLimiter:
    """Per-source token buckets. State is bounded: the least recently seen
    source is forgotten first (forgetting only ever resets a bucket to full)."""

    def __init__(self, per_s: float, burst: float, max_sources: int = RATE_SOURCES_MAX) -> None:
        self.per_ns = per_s / NS
        self.burst = float(burst)
        self.max_sources = max_sources
        # source -> [tokens, last refill ns, last "error rate" reply ns]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: str, now_ns: int) -> tuple[bool, bool]:
        """(accepted, answer_with_error_rate)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
            bucket = self._buckets[source] = [self.burst, float(now_ns), -1e30]
        else:
            self._buckets.move_to_end(source)
            bucket[0] = min(self.burst, bucket[0] + (now_ns - bucket[1]) * self.per_ns)
            bucket[1] = float(now_ns)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True, False
        if now_ns - bucket[2] >= NS:
            bucket[2] = float(now_ns)
            return False, True
        return False, False


@dataclass(slots=True)
class _Handled:
    reply: bytes | None  # None while the reply is pending (a stop waiting for its reading)
    at_ns: int
    addrs: list[Any] | None = None  # who asked while pending (a few, distinct)

    def asked_by(self, addr: Any) -> None:
        if self.addrs is None:
            self.addrs = []
        if addr not in self.addrs and len(self.addrs) < 4:
            self.addrs.append(addr)


class DedupCache:
    """(source, id) -> reply, kept at least ``keep_ns`` (the auth window) and
    bounded. If the bound forces out an entry younger than ``keep_ns``,
    ``floor_ts_ns`` rises so a replay of that id (its ts is at or below the
    floor) is refused as stale: replay protection holds under any load."""

    def __init__(self, keep_ns: int, max_entries: int = DEDUP_MAX) -> None:
        self.keep_ns = keep_ns
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, str], _Handled] = OrderedDict()
        self._ts: dict[tuple[str, str], int] = {}
        self.floor_ts_ns = 0
        self.evicted_early = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, str]) -> _Handled | None:
        return self._items.get(key)

    def put(self, key: tuple[str, str], entry: _Handled, ts_ns: int | None) -> None:
        self._items[key] = entry
        if ts_ns is not None:
            self._ts[key] = ts_ns
        while len(self._items) > self.max_entries:
            old_key, old = self._items.popitem(last=False)
            old_ts = self._ts.pop(old_key, None)
            if entry.at_ns - old.at_ns < self.keep_ns:
                self.evicted_early += 1
                if old_ts is not None:
                    self.floor_ts_ns = max(self.floor_ts_ns, old_ts)

    def expire(self, now_ns: int) -> None:
        items = self._items
        while items:
            key, first = next(iter(items.items()))
            if now_ns - first.at_ns < self.keep_ns or first.reply is None:
                break
            items.popitem(last=False)
            self._ts.pop(key, None)


class _LogLimiter:
    """At most ``per_s`` log lines a second per event; the rest are counted."""

    def __init__(self, per_s: int = 5) -> None:
        self.per_s = per_s
        self._window: dict[str, list[int]] = {}

    def __call__(self, now_ns: int, event: str, **kw: Any) -> None:
        slot = self._window.setdefault(event, [0, 0, 0])  # window start, count, suppressed
        if now_ns - slot[0] >= NS:
            if slot[2]:
                log.warning(event + "_suppressed", count=slot[2])
            slot[0], slot[1], slot[2] = now_ns, 0, 0
        if slot[1] < self.per_s:
            slot[1] += 1
            log.warning(event, **kw)
        else:
            slot[2] += 1


# ---------------------------------------------------------------------- the service


class ReplyPort(Protocol):
    """Where a reply goes: the port the message came in on."""

    def sendto(self, data: bytes, addr: Any) -> None: ...

    def is_closing(self) -> bool: ...


class _Port:
    """One bound UDP socket read straight from the event loop.

    asyncio's datagram transport reads one datagram per loop iteration; under a
    flood the receive buffer then fills and the kernel drops legitimate markers
    with the junk. Here each readiness callback drains up to ``DRAIN_MAX``
    datagrams (bounded, so readings keep flowing), which empties the buffer
    several times faster than one sender can fill it.
    """

    def __init__(self, sock: socket.socket, service: MarkerService) -> None:
        self.sock = sock
        self.service = service
        self._loop = asyncio.get_running_loop()
        self._closing = False
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        recvfrom = self.sock.recvfrom
        on_datagram = self.service.on_datagram
        for _ in range(DRAIN_MAX):
            try:
                data, addr = recvfrom(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors for replies to vanished senders
                self.service.counters["send_errors"] += 1
                continue
            try:
                on_datagram(data, addr, self)
            except Exception:  # the port must never die on input
                self.service.counters["internal_errors"] += 1
                log.exception("marker_handler_failed")

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sock.sendto(data, addr)  # non-blocking: a full send buffer raises, counted

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


@dataclass(slots=True)
class _Job:
    lines: list[str]
    reply: bytes | None
    transport: ReplyPort | None
    addr: Any
    key: tuple[str, str] | None


class MarkerService:
    """The marker port and the run engine, as one daemon component.

    It is also the pipeline's reading stage (``push``/``pop_ready``/``flush_all``).
    """

    def __init__(self, cfg: Any, meters: Sequence[str], journal: JournalLike, *,
                 clock: Clock = SYSTEM_CLOCK,
                 status_provider: Callable[[], dict[str, Any]] | None = None,
                 clock_step: Callable[[int, int], bool] | None = None,
                 journal_dir: str | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.journal = journal
        self.journal_dir = journal_dir
        self.status_provider = status_provider
        secret_file = getattr(cfg, "secret_file", None)
        self.secret: bytes | None = wire.read_secret(secret_file) if secret_file else None
        self.listen = check_listen(cfg, self.secret)
        self.allow = parse_allow(cfg.allow)
        self.auth_window_ns = int(cfg.auth_window_s * NS)
        self.rate = RateLimiter(cfg.rate.per_s, cfg.rate.burst)
        self.dedup = DedupCache(self.auth_window_ns)
        self.engine = RunEngine(meters, EngineSettings.from_config(cfg), clock_step=clock_step,
                                warn=self._engine_warn)
        self.meter_names = list(meters)
        self.counters: dict[str, int] = dict.fromkeys(
            ("datagrams", "replies", "syntax", "auth", "stale", "busy", "unknown", "rate",
             "not_allowed", "duplicates", "internal_errors", "send_errors", "journal_errors"),
            0)
        self._allowed_cache: OrderedDict[str, bool] = OrderedDict()
        self._log_limited = _LogLimiter()
        self._ports: list[_Port] = []
        self._jobs: asyncio.Queue[_Job] | None = None
        # Set by every datagram (the only way a run opens or a stop starts waiting):
        # wakes the ticker, which sleeps while it has nothing to watch.
        self._tick_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.addresses: list[tuple[str, int]] = []
        self.reopened: list[Any] = []

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self.journal_dir is not None:
            from wattd.markers.restore import reopen_runs

            self.reopened = reopen_runs(self.engine, self.journal_dir, self.meter_names,
                                        self.cfg.max_run_s, self.clock.realtime_ns(),
                                        self.clock.boottime_ns())
            for item in self.reopened:
                log.info("run_reopened", run=item.run, meter=item.meter, start_ns=item.start_ns)
        self._jobs = asyncio.Queue()
        try:
            for host, port in self.listen:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                           flags=socket.AI_PASSIVE)
                family, kind, proto, _, sockaddr = infos[0]
                sock = socket.socket(family, kind, proto)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
                try:
                    sock.bind(sockaddr)
                except OSError as exc:
                    sock.close()
                    raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}",
                                      key="markers.listen") from None
                self._ports.append(_Port(sock, self))
                bound = sock.getsockname()
                self.addresses.append((bound[0], bound[1]))
        except BaseException:
            await self.stop()
            raise
        self._tasks.append(asyncio.ensure_future(self._writer()))
        self._tasks.append(asyncio.ensure_future(self._ticker()))
        log.info("markers_listening", addresses=[f"{h}:{p}" for h, p in self.addresses],
                 auth=self.secret is not None, allow=[str(n) for n in self.allow])

    async def stop(self) -> None:
        for port in self._ports:
            port.close()
        self._ports.clear()
        # Answer stops still waiting for their reading (power held from the last one).
        self.engine.answer_pending()
        self._take_completions()
        if self._jobs is not None and self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self._jobs.join(), 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- reading stage ---------------------------------------------------------

    def push(self, reading: Reading) -> None:
        self.engine.push(reading)
        if self.engine.has_completions:
            self._take_completions()

    def pop_ready(self, now_boot_ns: int) -> list[Reading]:
        return self.engine.pop_ready(now_boot_ns)

    def flush_all(self) -> list[Reading]:
        return self.engine.flush_all()

    # -- datagrams -------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: Any,
                    transport: ReplyPort | None) -> None:
        # One clock read decides the cheap refusals; the bracketed pair that
        # stamps a message is read only for a message that gets that far.
        now_boot = self.clock.boottime_ns()
        self.counters["datagrams"] += 1
        self._tick_wake.set()
        source = str(addr[0])
        if source.startswith("::ffff:"):
            source = source[7:]
        if self.allow and not self._allowed(source):
            self.counters["not_allowed"] += 1  # no reply: do not reflect to strangers
            self._log_limited(now_boot, "marker_source_not_allowed", source=source)
            return
        accepted, answer = self.rate.allow(source, now_boot)
        if not accepted:
            self.counters["rate"] += 1
            if answer and not data.startswith(b"sample "):  # samples are never answered
                self._send(transport, wire.format_error("rate", "rate limit exceeded"), addr)
                self._log_limited(now_boot, "marker_rate_limited", source=source)
            return
        recv_rt, now_boot = clock_pair(self.clock)
        try:
            msg = parse_message(data)
            self._authenticate(msg, recv_rt)
        except MarkerInputError as exc:
            # a sample is fire-and-forget (SPEC 9.3): refused and counted, never answered
            silent = data.startswith(b"sample ")
            self._refuse(exc, source, addr, None if silent else transport, now_boot, None)
            return
        if msg.verb in wire.SILENT_VERBS:
            transport = None  # fire-and-forget: journaled (or counted), never answered
        key = (source, msg.msg_id) if msg.msg_id is not None else None
        if key is not None:
            seen = self.dedup.get(key)
            if seen is not None:
                self.counters["duplicates"] += 1
                if seen.reply is not None:
                    self._send(transport, seen.reply, addr)
                else:
                    seen.asked_by(addr)
                return
        if msg.verb == "status":
            reply = wire.format_status(self.status_json(), msg.msg_id)
            self._remember(key, reply, now_boot, msg)
            self._send(transport, reply, addr)
            return
        outcome = self.engine.handle(msg, source, recv_rt, now_boot,
                                     context=(key, transport, addr))
        if outcome.reply is not None and outcome.reply.startswith(b"error "):
            code = outcome.reply.split(b" ", 2)[1].decode()
            self.counters[code] = self.counters.get(code, 0) + 1
            self._log_limited(now_boot, "marker_refused", source=source, code=code,
                              reply=outcome.reply.decode("ascii", "replace"))
        if outcome.lines or outcome.pending:
            # Remembered as pending: the reply is known (and sent) once the
            # lines are on disk; a retransmission meanwhile changes nothing.
            self._remember(key, None, now_boot, msg, addr)
            self._enqueue(_Job(outcome.lines, outcome.reply, transport, addr, key))
        else:
            self._remember(key, outcome.reply, now_boot, msg)
            if outcome.reply is not None:
                self._send(transport, outcome.reply, addr)
        if self.engine.has_completions:
            self._take_completions()

    def _authenticate(self, msg: MarkerMessage, recv_rt: int) -> None:
        if self.secret is None:
            return
        if msg.mac is None or msg.ts_ns is None or msg.msg_id is None:
            raise MarkerInputError("auth", "a signed message needs ts, id and mac (last)")
        if not wire.verify(self.secret, msg.signed, msg.mac):
            raise MarkerInputError("auth", "bad mac")
        if abs(recv_rt - msg.ts_ns) > self.auth_window_ns or msg.ts_ns <= self.dedup.floor_ts_ns:
            raise MarkerInputError("stale", "ts outside the authentication window")

    def _refuse(self, exc: MarkerInputError, source: str, addr: Any,
                transport: ReplyPort | None, now_boot: int,
                msg_id: str | None) -> None:
        self.counters[exc.reason] = self.counters.get(exc.reason, 0) + 1
        self._log_limited(now_boot, "marker_refused", source=source, code=exc.reason,
                          detail=exc.detail)
        self._send(transport, wire.format_error(exc.reason, exc.detail, msg_id), addr)

    def _remember(self, key: tuple[str, str] | None, reply: bytes | None, now_boot: int,
                  msg: MarkerMessage, addr: Any = None) -> None:
        if key is not None:
            entry = _Handled(reply, now_boot)
            if reply is None:
                entry.asked_by(addr)
            self.dedup.put(key, entry, msg.ts_ns)

    def _allowed(self, source: str) -> bool:
        cached = self._allowed_cache.get(source)
        if cached is not None:
            return cached
        try:
            address = ipaddress.ip_address(source.split("%", 1)[0])
        except ValueError:
            result = False
        else:
            result = address.is_loopback or any(address in net for net in self.allow)
        if len(self._allowed_cache) >= ALLOW_CACHE_MAX:
            self._allowed_cache.popitem(last=False)
        self._allowed_cache[source] = result
        return result

    def _send(self, transport: ReplyPort | None, reply: bytes,
              addr: Any) -> None:
        if transport is None or not reply or transport.is_closing():
            return
        try:
            transport.sendto(reply, addr)
            self.counters["replies"] += 1
        except OSError:
            self.counters["send_errors"] += 1

    # -- journal writes, then replies -----------------------------------------

    def _enqueue(self, job: _Job) -> None:
        if self._jobs is None:
            return
        self._jobs.put_nowait(job)

    def _take_completions(self) -> None:
        for comp in self.engine.take_completions():
            self._enqueue(self._job_for(comp))

    def _job_for(self, comp: Completion) -> _Job:
        if comp.context is None:
            return _Job(comp.lines, None, None, None, None)
        key, transport, addr = comp.context
        return _Job(comp.lines, comp.reply, transport, addr, key)

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
            except Exception as exc:  # noqa: BLE001 - keep serving; the reply says so
                self.counters["journal_errors"] += 1
                log.error("marker_journal_write_failed", error=str(exc), lines=len(lines))
            for job in batch:
                if job.reply is not None:
                    addrs = [job.addr]
                    seen = self.dedup.get(job.key) if job.key is not None else None
                    if seen is not None:
                        seen.reply = job.reply
                        addrs = seen.addrs or addrs
                        seen.addrs = None
                    for addr in addrs:
                        self._send(job.transport, job.reply, addr)
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
                now_rt, now_boot = clock_pair(self.clock)
                self.engine.poll(now_rt, now_boot)
                self._take_completions()
                self.dedup.expire(now_boot)
            except Exception:  # the ticker survives a bug in one tick
                self.counters["internal_errors"] += 1
                log.exception("marker_tick_failed")

    def _nothing_to_watch(self) -> bool:
        return not (self.engine.waiting or len(self.dedup) or self.engine.open_runs())

    def _engine_warn(self, event: str, **kw: Any) -> None:
        self._log_limited(self.clock.boottime_ns(), event, **kw)

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"listen": [f"{h}:{p}" for h, p in self.addresses],
                "auth": self.secret is not None, **self.engine.status(),
                "open_runs": self.engine.open_runs(self.clock.boottime_ns()),
                "counters": dict(self.counters), "dedup_entries": len(self.dedup),
                "rate_sources": len(self.rate)}

    def status_json(self) -> dict[str, Any]:
        if self.status_provider is not None:
            try:
                return self.status_provider()
            except Exception as exc:  # noqa: BLE001 - status always answers
                return {"error": str(exc), "markers": self.status()}
        return {"markers": self.status()}
