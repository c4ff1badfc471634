"""The fault suite, reduced to CI size (full size: `bench/faults.py --full`).

Each test injects one fault into the real daemon and checks what survived and what
was lost (see tests/fault_scenarios.py); the result is printed, so `pytest -s`
shows the same report as bench/faults.py.
"""

from __future__ import annotations

from pathlib import Path

from tests import fault_scenarios as fs


def _assert_ok(result: fs.FaultResult) -> None:
    print(result)
    failed = [name for name, ok in result.checks.items() if not ok]
    assert not failed, f"{result.fault}: failed {failed}\n{result}"


def test_serial_unplug_replug_resumes_every_time(tmp_path: Path) -> None:
    _assert_ok(fs.serial_unplug_replug(tmp_path, cycles=5))


def test_database_flapping_loses_nothing(tmp_path: Path) -> None:
    _assert_ok(fs.database_flapping(tmp_path, flaps=2))


def test_daemon_sigkilled_and_restarted_mid_run(tmp_path: Path) -> None:
    _assert_ok(fs.daemon_sigkill(tmp_path, kills=3))


def test_udp_flood_beside_legitimate_markers(tmp_path: Path) -> None:
    _assert_ok(fs.udp_flood(tmp_path, flood_s=5.0))


def test_journal_at_its_size_bound(tmp_path: Path) -> None:
    _assert_ok(fs.journal_size_bound(tmp_path, max_bytes=2_000_000, seconds=4.0))


async def test_realtime_clock_step(tmp_path: Path) -> None:
    _assert_ok(await fs.clock_step(tmp_path))
