"""Step runs against a real `wattd run` on a pty meter: every stop reply against
`wattd report` on the same journal (issue 17; bench/bench_fidelity.py and
tests/test_fidelity.py run it at two sizes).

The meter is a simulated GB202 (the HLW8032 chip model, pulses and all) served
on a pseudo-terminal from a thread of this process, following a power that the
rig steps while runs are open: constant before the start, a step inside the
run, constant after it. Markers go over real UDP with the sender timestamp
back-dated or left out; blocks of runs are made with both cores busy (busy-loop
processes, stopped by pid). Once all runs are done the daemon is stopped and
`wattd report --format json` is run on its journal as a subprocess: each run's
stop reply (`energy_j`) is compared with the report's energy for that run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.load_rig import ROOT, DaemonRig
from wattd.markers import wire
from wattd.markers.client import MarkerClient, new_id
from wattd.protocols.registry import get_driver
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.pty_server import PtyMeterServer

DRIVER = "gb202"
METER = "m1"
# (power before the step, after it): up and down, large and small steps.
STEPS_W = ((100.0, 300.0), (300.0, 100.0), (40.0, 250.0), (250.0, 60.0), (120.0, 180.0))
# Sender timestamp of (start, stop): back-dated or absent, every combination.
TS_MODES = (("backdated", "backdated"), ("absent", "absent"), ("backdated", "absent"),
            ("absent", "backdated"))


class SteppedPower:
    """The simulated load: whatever ``power_w`` is now (set by the rig's thread)."""

    def __init__(self, power_w: float) -> None:
        self.power_w = power_w

    def power_at(self, t_s: float) -> float:
        return self.power_w


@dataclass(frozen=True)
class RunPlan:
    name: str
    before_w: float
    after_w: float
    start_ts: str  # "backdated" or "absent"
    stop_ts: str
    loaded: bool  # both cores busy during this run


@dataclass
class RunOutcome:
    plan: RunPlan
    reply_energy_j: float | None = None
    reply: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    error: str = ""

    @property
    def report_energy_j(self) -> float | None:
        value = None if self.report is None else self.report.get("energy_j")
        return None if value is None else float(value)

    @property
    def rel_diff(self) -> float:
        """|reply - report| / |report|; infinite when either is missing."""
        a, b = self.reply_energy_j, self.report_energy_j
        if a is None or b is None:
            return float("inf")
        if a == b:
            return 0.0
        return abs(a - b) / max(abs(b), 1e-12)


def plan_runs(n_runs: int, *, load_block: int = 10,
              steps_w: tuple[tuple[float, float], ...] = STEPS_W) -> list[RunPlan]:
    """``n_runs`` plans cycling through the steps and timestamp modes; runs in
    every other block of ``load_block`` are loaded (half of them for an even
    number of blocks; ``load_block`` 0: all of them)."""
    out = []
    for i in range(n_runs):
        before, after = steps_w[i % len(steps_w)]
        start_ts, stop_ts = TS_MODES[(i // len(STEPS_W) + i) % len(TS_MODES)]
        out.append(RunPlan(f"fid{i:04d}", before, after, start_ts, stop_ts,
                           loaded=load_block == 0 or (i // load_block) % 2 == 1))
    return out


class CoreLoad:
    """Busy-loop processes, one per core, stopped by pid."""

    def __init__(self, n: int | None = None) -> None:
        self.n = n or os.cpu_count() or 2
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if self.procs:
            return
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(self.n)]

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass
class FidelitySettings:
    frame_interval_s: float = 0.06  # faster than the chip's 104 ms: more runs per minute
    backdate_ms: float = 150.0
    before_s: float = 0.35  # constant power from the start to the step
    after_s: float = 0.55  # constant power from the step to the stop
    settle_s: float = 0.3  # between runs, at the next run's first power
    load_block: int = 10  # 0: every run loaded
    steps_w: tuple[tuple[float, float], ...] = STEPS_W
    markers: dict[str, Any] = field(default_factory=dict)  # extra markers config


@dataclass
class FidelityResult:
    outcomes: list[RunOutcome]
    seconds: float
    journal_dir: Path
    report_notes: list[str]

    @property
    def worst(self) -> RunOutcome | None:
        return max(self.outcomes, key=lambda o: o.rel_diff, default=None)

    @property
    def worst_rel_diff(self) -> float:
        worst = self.worst
        return 0.0 if worst is None else worst.rel_diff

    def differing(self, tolerance: float = 1e-6) -> list[RunOutcome]:
        return [o for o in self.outcomes if not o.rel_diff <= tolerance]

    def summary(self, tolerance: float = 1e-6) -> dict[str, Any]:
        worst = self.worst
        loaded = [o for o in self.outcomes if o.plan.loaded]
        return {
            "runs": len(self.outcomes),
            "runs_loaded": len(loaded),
            "runs_backdated_start": sum(o.plan.start_ts == "backdated" for o in self.outcomes),
            "runs_absent_stop_ts": sum(o.plan.stop_ts == "absent" for o in self.outcomes),
            "worst_rel_diff": self.worst_rel_diff,
            "worst_run": None if worst is None else worst.plan.name,
            "worst_loaded_rel_diff": max((o.rel_diff for o in loaded), default=0.0),
            "runs_differing": len(self.differing(tolerance)),
            "runs_extrapolated": sum("extrapolated_s" in o.reply for o in self.outcomes),
            "target_rel_diff": tolerance,
            "met": self.worst_rel_diff <= tolerance,
            "seconds": round(self.seconds, 1),
        }

    def describe(self, outcome: RunOutcome) -> str:
        """A differing run in words, with the journal lines around its boundaries."""
        plan = outcome.plan
        lines = [f"{plan.name}: {plan.before_w:g} W -> {plan.after_w:g} W, start ts "
                 f"{plan.start_ts}, stop ts {plan.stop_ts}, loaded {plan.loaded}: reply "
                 f"{outcome.reply_energy_j} J, report {outcome.report_energy_j} J "
                 f"(rel {outcome.rel_diff:.3g}) {outcome.error}",
                 f"  reply fields: {outcome.reply}", f"  report: {outcome.report}"]
        report = outcome.report or {}
        start, stop = report.get("start_ns"), report.get("stop_ns")
        if isinstance(start, int) and isinstance(stop, int):
            lines += journal_context(self.journal_dir, plan.name, start, stop)
        return "\n".join(lines)


def journal_context(journal_dir: Path, run: str, start_ns: int, stop_ns: int,
                    margin_ns: int = 600_000_000) -> list[str]:
    """The journal's lines near [start, stop] in journal order, with their index
    (readings as `t power`, markers whole)."""
    from wattd.journal.reader import iter_lines

    out = []
    for index, (_, line) in enumerate(iter_lines(journal_dir)):
        head, _, t_text = line.rpartition(" ")
        try:
            t = int(t_text)
        except ValueError:
            continue
        if f"run={run}" in head or (line.startswith("wattd_marker") and
                                     start_ns - margin_ns <= t <= stop_ns + margin_ns):
            out.append(f"  [{index}] {line}")
        elif line.startswith("wattd_power") and start_ns - margin_ns <= t <= stop_ns + margin_ns:
            power = head.partition(" ")[2].partition(",")[0]
            out.append(f"  [{index}] reading t={t} ({(t - start_ns) / 1e6:+.1f} ms from start, "
                       f"{(t - stop_ns) / 1e6:+.1f} from stop) {power}")
    return out


def _marker(client: MarkerClient, verb: str, name: str, ts_mode: str,
            backdate_ns: int) -> wire.Reply:
    ts = time.time_ns() - backdate_ns if ts_mode == "backdated" else None
    msg_id = new_id()
    data = wire.format_message(verb, name, ts_ns=ts, msg_id=msg_id)
    return client.exchange(data, msg_id)


def run_fidelity(tmp: Path, n_runs: int, settings: FidelitySettings | None = None, *,
                 progress: bool = False) -> FidelityResult:
    """Start the meter and the daemon, make ``n_runs`` step runs, stop the daemon,
    run the report and pair every stop reply with the report's run."""
    s = settings or FidelitySettings()
    plans = plan_runs(n_runs, load_block=s.load_block, steps_w=s.steps_w)
    power = SteppedPower(plans[0].before_w if plans else 100.0)
    spec = get_driver(DRIVER)
    cal = spec.calibration(None)
    chip = ChipModel(power, kv=cal["kv"], ki=cal["ki"], seed=17)
    tmp.mkdir(parents=True, exist_ok=True)
    meter = PtyMeterServer(chip, spec.serial, link_path=tmp / "ttyFID0",
                           frame_interval_s=s.frame_interval_s).start()
    rig = DaemonRig(tmp / "daemon", [{"name": METER, "driver": DRIVER,
                                      "port": meter.port_path}],
                    journal={"fsync_interval_s": 1.0}, markers=s.markers)
    load = CoreLoad()
    outcomes: list[RunOutcome] = []
    backdate_ns = int(s.backdate_ms * 1e6)
    t0 = time.monotonic()
    try:
        rig.start()
        # Readings flowing: the status shows them written.
        deadline = time.monotonic() + 30
        while rig.readings_written() < 5:
            if time.monotonic() > deadline:
                raise AssertionError(f"no readings from the pty meter:\n{rig.log_tail()}")
            time.sleep(0.1)
        time.sleep(s.settle_s)
        with MarkerClient(rig.to, timeout_s=15.0) as client:
            for i, plan in enumerate(plans):
                if plan.loaded:
                    load.start()
                else:
                    load.stop()
                outcome = RunOutcome(plan)
                outcomes.append(outcome)
                power.power_w = plan.before_w
                reply = _marker(client, "start", plan.name, plan.start_ts, backdate_ns)
                if not reply.ok:
                    outcome.error = f"start refused: {reply.code} {reply.text}"
                    continue
                time.sleep(s.before_s)
                power.power_w = plan.after_w
                time.sleep(s.after_s)
                reply = _marker(client, "stop", plan.name, plan.stop_ts, backdate_ns)
                if not reply.ok:
                    outcome.error = f"stop refused: {reply.code} {reply.text}"
                    continue
                outcome.reply = dict(reply.fields)
                if "energy_j" in reply.fields:
                    outcome.reply_energy_j = float(reply.fields["energy_j"])
                nxt = plans[i + 1] if i + 1 < len(plans) else plan
                power.power_w = nxt.before_w
                if progress and (i + 1) % 20 == 0:
                    print(f"  {i + 1}/{len(plans)} runs", file=sys.stderr, flush=True)
                time.sleep(s.settle_s)
    finally:
        load.stop()
        rig.stop()
        meter.stop()
    seconds = time.monotonic() - t0
    report = report_json(rig.journal_dir)
    by_name = {str(r["run"]): r for r in report["runs"] if r.get("phase") is None}
    for outcome in outcomes:
        outcome.report = by_name.get(outcome.plan.name)
    return FidelityResult(outcomes, seconds, rig.journal_dir, list(report.get("notes", [])))


def report_json(journal_dir: Path) -> dict[str, Any]:
    """`wattd report --journal DIR --format json` as a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "wattd", "report", "--journal",
                           str(journal_dir), "--format", "json"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"wattd report failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout))

