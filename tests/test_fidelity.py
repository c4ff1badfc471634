"""Every stop reply equals `wattd report` on the same journal (issue 17): the
fidelity bench (bench/bench_fidelity.py, 200 runs) at a reduced size, through
the same rig: a real `wattd run` on a pty meter whose power steps inside each
run, markers over real UDP with back-dated and absent sender timestamps, some
runs with every core busy. The two numbers are computed independently (online
on boot time from the readings as they arrive; offline on realtime from the
journal), so the test fails when they part."""

from __future__ import annotations

from pathlib import Path

from tests.fidelity_rig import FidelitySettings, run_fidelity

RUNS = 12
TOLERANCE = 1e-6


def test_stop_replies_equal_the_report_on_step_runs(tmp_path: Path) -> None:
    result = run_fidelity(tmp_path, RUNS, FidelitySettings(load_block=3))
    outcomes = result.outcomes
    assert len(outcomes) == RUNS
    plans = [o.plan for o in outcomes]
    # The mix the bench's figure is about.
    assert {p.start_ts for p in plans} == {"backdated", "absent"}
    assert {p.stop_ts for p in plans} == {"backdated", "absent"}
    assert any(p.loaded for p in plans)
    assert not all(p.loaded for p in plans)
    assert any(p.after_w > p.before_w for p in plans)
    assert any(p.after_w < p.before_w for p in plans)
    for outcome in outcomes:
        assert not outcome.error, result.describe(outcome)
        assert outcome.reply_energy_j is not None, result.describe(outcome)
        assert outcome.report is not None, result.describe(outcome)
        assert outcome.report["status"] == "ok", result.describe(outcome)
        assert outcome.rel_diff <= TOLERANCE, result.describe(outcome)
        # The run's journaled result is the reply's (written with full digits).
        daemon_j = outcome.report["daemon_energy_j"]
        assert abs(daemon_j - outcome.reply_energy_j) <= 1e-6, result.describe(outcome)
        # A step run: energy between the two constant powers' energies.
        duration_s = float(outcome.reply["duration_s"])
        low, high = sorted((outcome.plan.before_w, outcome.plan.after_w))
        assert low * duration_s * 0.9 < outcome.reply_energy_j < high * duration_s * 1.1
    assert result.worst_rel_diff <= TOLERANCE
