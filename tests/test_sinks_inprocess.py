"""The default delivery (`delivery: thread`) runs inside the daemon: no child process,
the same guarantees. A real `wattd run`, a real VictoriaMetrics, real signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fault_scenarios import _stored_when_settled, _v2
from tests.load_rig import DaemonRig, delivery_check, journal_readings, wait_for
from tests.servers import VictoriaMetrics


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids += [int(k) for k in text]
    return kids


def _sink(rig: DaemonRig) -> dict[str, Any]:
    return dict(rig.status()["sinks"]["victoria"])


def test_thread_delivery_has_no_child_and_loses_nothing_across_a_kill(
        tmp_path: Path, victoria_server_fn: VictoriaMetrics) -> None:
    rig = DaemonRig(tmp_path / "d", [{"name": "p", "driver": "simulated", "power_w": 70.0}],
                    simulate=True, influxdb=_v2(victoria_server_fn, 20))
    with rig:
        rig.start()
        assert rig.proc is not None
        wait_for(lambda: _sink(rig)["delivered_points"] > 0, 30, "a first delivery")
        first = _sink(rig)
        assert first["delivery"] == "thread"
        assert first["state"] == "running"
        assert "pid" not in first
        assert _children(rig.proc.pid) == []
        rig.kill()  # SIGKILL mid-delivery: the cursor holds only what was acknowledged
        rig.start()
        wait_for(lambda: _sink(rig)["delivered_points"] > 30, 60, "delivery after restart")
        assert rig.stop() == 0
    journal = journal_readings(rig.journal_dir)
    check = delivery_check(journal, _stored_when_settled(victoria_server_fn,
                                                         sum(map(len, journal.values())),
                                                         journal=journal))
    assert check["journal"] > 20
    assert check["missing"] == 0, check
