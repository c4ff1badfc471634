"""Bounded per-source state of the marker service: rate limits, the
de-duplication cache, and a limit on how often one event is logged.

Each is bounded whatever arrives (a flood from many addresses only ever
forgets the oldest entries, in ways that keep the security rules holding).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from wattd.energy import NS
from wattd.logsetup import get_logger
from wattd.markers.events import SourceAddress

log = get_logger("wattd.markers")

DEDUP_MAX = 65_536
RATE_SOURCES_MAX = 4_096


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
class Handled:
    """A message handled, by (source, id): its reply, or None while the reply
    is pending (a stop waiting for its reading) with who asked meanwhile."""

    reply: bytes | None
    at_ns: int
    addrs: list[SourceAddress] | None = None  # a few, distinct

    def asked_by(self, addr: SourceAddress) -> None:
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
        self._items: OrderedDict[tuple[str, str], Handled] = OrderedDict()
        self._ts: dict[tuple[str, str], int] = {}
        self.floor_ts_ns = 0
        self.evicted_early = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, str]) -> Handled | None:
        return self._items.get(key)

    def put(self, key: tuple[str, str], entry: Handled, ts_ns: int | None) -> None:
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


class LogLimiter:
    """At most ``per_s`` log lines a second per event; the rest are counted."""

    def __init__(self, per_s: int = 5) -> None:
        self.per_s = per_s
        self._window: dict[str, list[int]] = {}

    def __call__(self, now_ns: int, event: str, **kw: object) -> None:
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
