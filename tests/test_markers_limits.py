"""Bounded per-source state of the marker service: dedup cache, rate limits,
log limiter."""

from __future__ import annotations

from wattd.energy import NS
from wattd.markers.events import SourceAddress
from wattd.markers.limits import DedupCache, Handled, RateLimiter


def test_dedup_and_rate_state_are_bounded() -> None:
    cache = DedupCache(keep_ns=30 * NS, max_entries=1000)
    for i in range(10_000):
        cache.put((f"10.0.{i // 250}.{i % 250}", str(i)), Handled(b"ok", i), 1_000 + i)
    assert len(cache) == 1000
    assert cache.floor_ts_ns == 1_000 + 8_999  # replays of evicted ids are refused as stale
    cache.expire(100 * NS)
    assert len(cache) == 0
    rate = RateLimiter(per_s=100, burst=200, max_sources=100)
    for i in range(5_000):
        rate.allow(f"10.1.{i // 250}.{i % 250}", i)
    assert len(rate) == 100
    results = [rate.allow("10.9.9.9", 0)[0] for _ in range(250)]
    assert results.count(True) == 200
    assert rate.allow("10.9.9.9", NS // 10)[0]  # refilled: 10 tokens after 100 ms


def test_a_pending_entry_is_kept_past_its_window_and_remembers_a_few_askers() -> None:
    cache = DedupCache(keep_ns=NS)
    pending = Handled(None, 0)
    for port in (1, 2, 2, 3, 4, 5, 6):
        pending.asked_by(SourceAddress("10.0.0.1", port))
    assert pending.addrs is not None
    assert [a.port for a in pending.addrs] == [1, 2, 3, 4]  # distinct, at most four
    cache.put(("10.0.0.1", "a"), pending, None)
    cache.expire(10 * NS)
    assert cache.get(("10.0.0.1", "a")) is pending  # its reply is not known yet
    pending.reply = b"ok stop a"
    cache.expire(10 * NS)
    assert cache.get(("10.0.0.1", "a")) is None


def test_rate_limit_answers_error_rate_at_most_once_a_second() -> None:
    rate = RateLimiter(per_s=1, burst=1)
    assert rate.allow("10.0.0.1", 0) == (True, False)
    assert rate.allow("10.0.0.1", 1) == (False, True)
    assert rate.allow("10.0.0.1", 2) == (False, False)
    assert rate.allow("10.0.0.1", NS + 1)[0]  # refilled after a second
