"""The reconnect object of a port: link states, its backoff, a stop that cuts a wait short."""

from __future__ import annotations

import asyncio
import random

from wattd.sources.reconnect import LinkState, Reconnector


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    rc = Reconnector("m", initial_s=0.5, max_s=30.0, jitter=0.2, rng=random.Random(1))
    delays = [rc.next_delay_s() for _ in range(12)]
    assert 0.4 <= delays[0] <= 0.6
    assert 0.8 <= delays[1] <= 1.2
    assert all(d <= 30.0 for d in delays)
    assert delays[-1] >= 24.0


def test_states_counters_and_the_reset_on_connect() -> None:
    rc = Reconnector("m", initial_s=1.0, max_s=8.0, jitter=0.0)
    assert rc.state is LinkState.CONNECTING
    rc.failed("no such file")
    rc.failed("no such file")
    assert (rc.state, rc.failures, rc.last_error) == (LinkState.RETRYING, 2, "no such file")
    assert [rc.next_delay_s() for _ in range(3)] == [1.0, 2.0, 4.0]
    rc.connected()
    assert (rc.state, rc.failures, rc.reconnects) == (LinkState.CONNECTED, 0, 0)
    assert rc.next_delay_s() == 1.0  # a new series starts from the first delay
    rc.lost("read: EIO")
    assert rc.state is LinkState.LOST
    rc.connected()
    assert rc.reconnects == 1


async def test_stop_cuts_a_wait_short_and_refuses_further_waits() -> None:
    rc = Reconnector("m", initial_s=30.0, max_s=30.0, jitter=0.0)
    waiting = asyncio.create_task(rc.wait())
    await asyncio.sleep(0)
    rc.stop()
    assert await asyncio.wait_for(waiting, 5) is False
    assert await rc.wait() is False
    assert rc.stopped
    rc.connected()  # a late callback does not revive it
    assert rc.state is LinkState.STOPPED


async def test_wait_returns_true_after_the_delay() -> None:
    rc = Reconnector("m", initial_s=0.01, max_s=0.01, jitter=0.0)
    assert await rc.wait() is True
