"""The one retry policy: capped exponential delays with jitter, reset rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wattd.backoff import HEALTHY_RUN_S, Backoff


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(initial_s=1.0, max_s=10.0, factor=2.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_backoff_jitter_bounds(rand: float) -> None:
    backoff = Backoff(initial_s=4.0, max_s=100.0, jitter=0.25, rng=lambda: rand)
    delay = backoff.next_delay()
    assert 3.0 <= delay <= 5.0
    capped = Backoff(initial_s=100.0, max_s=100.0, jitter=0.25, rng=lambda: rand)
    assert capped.next_delay() <= 100.0


def test_backoff_honours_retry_after_and_floor() -> None:
    backoff = Backoff(initial_s=0.5, max_s=60.0, jitter=0.0)
    assert backoff.next_delay(retry_after_s=7.0) == 7.0
    assert backoff.next_delay(floor_s=30.0) == 30.0


def test_backoff_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Backoff(initial_s=0)
    with pytest.raises(ValueError):
        Backoff(initial_s=5, max_s=1)
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


def test_default_jitter_stays_within_bounds() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, jitter=0.25)
    delays = [backoff.next_delay() for _ in range(50)]
    assert 0.75 <= delays[0] <= 1.25
    assert all(d <= 8.0 for d in delays)
    assert delays[-1] >= 6.0


def test_base_delay_is_the_next_delay_without_jitter() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0, jitter=0.2, rng=lambda: 0.0)
    assert backoff.base_delay_s == 0.5
    assert backoff.next_delay() == pytest.approx(0.4)
    assert backoff.base_delay_s == 1.0
    assert backoff.attempts == 1


def test_restart_delay_starts_again_after_a_healthy_run() -> None:
    backoff = Backoff(initial_s=1.0, max_s=30.0, jitter=0.0)
    quick = [backoff.next_restart_delay(ran_s=0.1) for _ in range(7)]
    assert quick == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.next_restart_delay(ran_s=HEALTHY_RUN_S + 1) == 1.0
    assert backoff.next_restart_delay(ran_s=HEALTHY_RUN_S) == 2.0  # not longer than the bound
    assert backoff.next_restart_delay(ran_s=5.0, healthy_run_s=4.0) == 1.0


def test_importing_it_without_jitter_pulls_in_no_random_module() -> None:
    code = ("import sys; from wattd.backoff import Backoff; Backoff(jitter=0.0).next_delay(); "
            "print('random' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"
