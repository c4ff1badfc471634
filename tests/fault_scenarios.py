"""Fault scenarios against the real daemon, each at a chosen size.

Used at full size by `bench/faults.py --full` and reduced by tests/test_faults.py.
Each scenario returns a `FaultResult`: what was injected, what survived, what was
lost, and the named checks that must all hold. Everything runs on loopback with
real parts: `wattd run` subprocesses (SIGTERM/SIGKILL by pid), simulated meters on
real ptys, real UDP markers, a real VictoriaMetrics; the clock step goes through
the daemon's injectable clock (in process).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.load_rig import (
    DaemonRig,
    delivery_check,
    free_udp_port,
    journal_bytes,
    journal_points,
    journal_readings,
    victoria_readings,
    wait_for,
)
from tests.servers import VictoriaMetrics
from wattd.markers.client import MarkerClient
from wattd.simulator.meter import start_simulated_meter
from wattd.simulator.pty_server import PtyMeterServer

FRAME_S = 0.104  # the simulated chip's frame period
FSYNC_INTERVAL_S = 1.0  # the documented loss bound on a crash (SPEC 4), as configured here


@dataclass
class FaultResult:
    fault: str
    injected: dict[str, Any]
    survived: dict[str, Any]
    lost: dict[str, Any]
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {"fault": self.fault, "ok": self.ok, "injected": self.injected,
                "survived": self.survived, "lost": self.lost, "checks": self.checks}

    def __str__(self) -> str:
        return json.dumps(self.as_dict(), indent=1)


def _meter(tmp: Path, name: str, power_w: float, seed: int) -> PtyMeterServer:
    return start_simulated_meter("gb202", power_w=power_w, link_path=tmp / f"{name}.tty",
                                 seed=seed)


def _meter_cfg(sim: PtyMeterServer, name: str) -> dict[str, Any]:
    return {"name": name, "driver": "gb202", "port": sim.port_path}


def _v2(vm: VictoriaMetrics, batch_size: int) -> list[dict[str, Any]]:
    return [{"url": vm.url, "api": "v2", "org": "wattd", "bucket": "wattd", "name": "victoria",
             "batch_size": batch_size, "flush_interval_s": 0.2}]


def _stored_when_settled(vm: VictoriaMetrics, want: int, timeout_s: float = 30.0,
                         journal: dict[str, Any] | None = None) -> dict[str, Any]:
    """VictoriaMetrics makes writes searchable within a second or two: poll. With
    `journal`, until every journal reading is stored (a resent duplicate makes the
    count reach `want` while a sample is not yet searchable); what is stored at the
    deadline is returned either way, for the caller's check to judge."""
    deadline = time.monotonic() + timeout_s
    while True:
        stored = victoria_readings(vm)
        if journal is not None:
            settled = delivery_check(journal, stored)["missing"] == 0
        else:
            settled = sum(len(v) for v in stored.values()) >= want
        if settled or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def _settle_delivery(rig: DaemonRig, sims: list[PtyMeterServer], timeout_s: float = 90.0
                     ) -> None:
    """Unplug the meters (no new readings), let hold-back and the writer empty, and wait
    until every sink has delivered the whole journal."""
    for sim in sims:
        sim.unplug()
    time.sleep(1.0)

    def settled() -> bool:  # every reading taken is journalled (hold-back) and delivered
        status = rig.status()
        pipeline = status["pipeline"]
        return (pipeline["readings_in"] == pipeline["readings_written"]
                and sum(int(s["backlog_bytes"]) for s in status.get("sinks", {}).values()) == 0)

    wait_for(settled, timeout_s, "the hold-back and the sink backlog to empty", 0.2)


def _deliver_rest(tmp: Path, meters: list[str], influx: list[dict[str, Any]],
                  journal: dict[str, Any] | None = None) -> None:
    """Start the daemon once more on the same journal with its meters unplugged: what
    it journalled after its sink stopped (SIGTERM) is delivered, as after any restart."""
    rest = DaemonRig(tmp / "daemon", [{"name": m, "driver": "gb202",
                                       "port": str(tmp / "unplugged")} for m in meters],
                     influxdb=influx, journal=journal)
    with rest:
        rest.start()
        wait_for(lambda: rest.sink_backlog_bytes() == 0, 120, "the rest delivered", 0.2)
        rest.stop()


def _meter_status(rig: DaemonRig, name: str) -> dict[str, Any]:
    return dict(rig.status()["meters"][name])


# -- serial unplug / replug -----------------------------------------------------------

def serial_unplug_replug(tmp: Path, cycles: int, down_s: float = 0.3) -> FaultResult:
    """The meter's pty vanishes and returns `cycles` times; readings resume each time."""
    sim = _meter(tmp, "plug", 100.0, 1)
    resumed = 0
    try:
        with DaemonRig(tmp / "daemon", [_meter_cfg(sim, "plug")],
                       journal={"fsync_interval_s": 0.2}) as rig:
            rig.start()
            wait_for(lambda: _meter_status(rig, "plug")["readings"] > 3, 20, "first readings")
            for i in range(cycles):
                sim.unplug()
                time.sleep(down_s)
                sim.replug()
                at_replug = _meter_status(rig, "plug")["readings"]

                def back(i: int = i, at_replug: int = at_replug) -> bool:
                    st = _meter_status(rig, "plug")
                    return bool(st["reconnects"] >= i + 1 and st["readings"] >= at_replug + 3)

                wait_for(back, 20, f"readings after replug {i + 1}", 0.1)
                resumed += 1
            final = _meter_status(rig, "plug")
            code = rig.stop()
    finally:
        sim.stop()
    # Every reading, with or without power_w (readings before the first refresh have none).
    journaled = sum(len(v) for v in journal_readings(rig.journal_dir, "clock_synced").values())
    return FaultResult(
        "serial_unplug_replug",
        injected={"unplugs": cycles, "down_s": down_s},
        survived={"reconnects": final["reconnects"], "resumed": resumed,
                  "readings_decoded": final["readings"], "readings_journaled": journaled,
                  "daemon_exit": code},
        lost={"frames_sent_while_unplugged_or_cut": sim.frames_sent - final["readings"],
              "decode_drops": final["dropped"]},
        checks={"resumed_every_time": resumed == cycles,
                "reconnects_counted": final["reconnects"] == cycles,
                "every_decoded_reading_journaled": journaled >= final["readings"],
                "clean_exit": code == 0})


# -- database flapping ----------------------------------------------------------------

def database_flapping(tmp: Path, flaps: int, up_s: float = 3.0, down_s: float = 2.0,
                      meters: int = 2, batch_size: int = 20) -> FaultResult:
    """VictoriaMetrics stopped and restarted every few seconds while readings flow."""
    sims = [_meter(tmp, f"m{i}", 50.0 + 25 * i, i) for i in range(meters)]
    vm = VictoriaMetrics(tmp / "vm")
    try:
        vm.start()
        with DaemonRig(tmp / "daemon", [_meter_cfg(s, f"m{i}") for i, s in enumerate(sims)],
                       influxdb=_v2(vm, batch_size)) as rig:
            rig.start()
            time.sleep(up_s)
            for _ in range(flaps):
                vm.stop()  # SIGTERM: see test_sinks_delivery on VictoriaMetrics and SIGKILL
                time.sleep(down_s)
                vm.start()
                time.sleep(up_s)
            sink = rig.status()["sinks"]["victoria"]
            _settle_delivery(rig, sims)
            code = rig.stop()
        journal = journal_readings(rig.journal_dir)
        check = delivery_check(journal, _stored_when_settled(vm, sum(map(len, journal.values())),
                                                           journal=journal))
    finally:
        vm.close()
        for sim in sims:
            sim.stop()
    return FaultResult(
        "database_flapping",
        injected={"outages": flaps, "down_s": down_s, "up_s": up_s},
        survived={"readings_journaled": check["journal"], "samples_in_database":
                  check["database"], "sink_retries": sink["retries"], "daemon_exit": code},
        lost={"missing_in_database": check["missing"], "resent_duplicates":
              check["duplicated"]},
        checks={"nothing_missing": check["missing"] == 0,
                "duplicates_within_one_batch_per_outage":
                    check["duplicated"] <= flaps * batch_size,
                "sink_retried": sink["retries"] >= flaps, "clean_exit": code == 0})


# -- daemon SIGKILLed and restarted mid-run --------------------------------------------

def daemon_sigkill(tmp: Path, kills: int, batch_size: int = 50) -> FaultResult:
    """SIGKILL the daemon mid-run (and mid-delivery) `kills` times; restart it each time.
    The simulated meter runs inside the daemon (`--simulate`) and restarts with it: a
    pseudo-terminal, unlike a USB adapter, refuses its line settings when reopened by
    a new process after its reader died."""
    vm = VictoriaMetrics(tmp / "vm")
    kill_times: list[int] = []
    downtime_s = 0.0
    reopened = 0
    try:
        vm.start()
        with DaemonRig(tmp / "daemon", [{"name": "k", "driver": "simulated", "power_w": 100.0}],
                       simulate=True, influxdb=_v2(vm, batch_size),
                       journal={"fsync_interval_s": FSYNC_INTERVAL_S}) as rig:
            rig.start()
            wait_for(lambda: _meter_status(rig, "k")["readings"] > 5, 20, "first readings")
            with rig.client() as client:
                started = client.send("start", "killed-run", tags={"fault": "sigkill"})
            for i in range(kills):
                time.sleep(1.0 + 0.37 * (i % 3))  # mid-run, mid-delivery, varied phase
                kill_times.append(time.time_ns())
                t_down = time.monotonic()
                rig.kill()
                time.sleep(0.2)
                rig.start()
                downtime_s += time.monotonic() - t_down
                runs = rig.status()["markers"]["open_runs"]
                reopened += any("killed-run" in json.dumps(r) for r in runs)
            time.sleep(1.0)
            with rig.client() as client:
                stopped = client.send("stop", "killed-run")
            code = rig.stop()
        _deliver_rest(tmp, ["k"], _v2(vm, batch_size))
        journal = journal_readings(rig.journal_dir)
        check = delivery_check(journal, _stored_when_settled(vm, sum(map(len, journal.values())),
                                                           journal=journal))
        report = _report(rig.journal_dir)
    finally:
        vm.close()
    times = sorted(journal.get("k", []))
    lost_s = []
    for kill_ns in kill_times:
        before = [t for t in times if t < kill_ns]
        lost_s.append(round((kill_ns - before[-1]) / 1e9, 3) if before else None)
    run = next((r for r in report["runs"] if r["run"] == "killed-run"), {})
    energy = float(stopped.fields.get("energy_j", "nan")) if stopped.ok else float("nan")
    duration = float(stopped.fields.get("duration_s", "nan")) if stopped.ok else float("nan")
    mean_w = float(stopped.fields.get("mean_w", "nan")) if stopped.ok else float("nan")
    report_j = float(run.get("energy_j", "nan"))
    return FaultResult(
        "daemon_sigkill",
        injected={"sigkills": kills, "downtime_s": round(downtime_s, 2)},
        survived={"open_run_reopened": reopened, "stop_reply": dict(stopped.fields),
                  "report_energy_j": report_j, "readings_journaled": check["journal"],
                  "samples_in_database": check["database"], "daemon_exit": code},
        lost={"readings_s_before_each_kill": lost_s, "bound_s": FSYNC_INTERVAL_S,
              "missing_in_database": check["missing"],
              "resent_duplicates": check["duplicated"]},
        checks={"run_started": started.ok, "run_reopened_after_every_kill": reopened == kills,
                "stop_ok": stopped.ok,
                "gap_reported": float(stopped.fields.get("gap_s", 0)) > 0,
                "loss_within_fsync_interval": all(x is not None and x <= FSYNC_INTERVAL_S
                                                  for x in lost_s),
                "energy_sane": energy > 0 and abs(mean_w - 100.0) < 5.0 and
                    abs(energy - mean_w * duration) <= 1e-6 * energy + 1e-3,
                "report_equals_reply": abs(report_j - energy) <= 1e-6 * energy + 1e-3,
                "nothing_missing": check["missing"] == 0,
                "duplicates_within_one_batch_per_kill": check["duplicated"] <= kills * batch_size,
                "clean_exit": code == 0})


def _report(journal_dir: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "wattd", "report", "--journal",
                          str(journal_dir), "--format", "json"],
                         capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise AssertionError(f"wattd report failed ({out.returncode}): {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout))


# -- UDP flood beside legitimate markers ------------------------------------------------

_FLOOD = """\
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.2', 0))
# Everything a flood can throw without owning the meter (a valid start would open a
# run and make the benchmark's start `busy`, which is the protocol working).
junk = [b'start flood%d meter=ghost' % i for i in range(20)] + [
    b'stop nothing', b'\\xff' * 1500, b'ping', b'stop x y=', b'status',
    b'event e ' + b'k=v ' * 300, b'\\x00\\x01garbage', b'start bad name!']
print('go', flush=True)
until = time.monotonic() + float(sys.argv[3])
sent = i = 0
while time.monotonic() < until:
    for _ in range(100):
        i += 1
        try:
            s.sendto(junk[i % len(junk)], (sys.argv[1], int(sys.argv[2])))
            sent += 1
        except OSError:
            pass
print(sent)
"""


def udp_flood(tmp: Path, flood_s: float, legit_runs: int = 2) -> FaultResult:
    """`flood_s` seconds of garbage and refused datagrams, as fast as one process sends
    them, from 127.0.0.2, while a benchmark on 127.0.0.1 opens and closes runs."""
    with DaemonRig(tmp / "daemon", [{"name": "f", "driver": "simulated", "power_w": 60.0}],
                   simulate=True) as rig:
        rig.start()
        time.sleep(0.5)
        flood = subprocess.Popen([sys.executable, "-c", _FLOOD, "127.0.0.1", str(rig.port),
                                  str(flood_s)], stdout=subprocess.PIPE, text=True)
        replies = []
        round_trips: list[float] = []
        during: list[bool] = []
        try:
            # The flood's interpreter starts (slowly on a loaded machine): its 'go'.
            assert flood.stdout is not None
            ready, _, _ = select.select([flood.stdout], [], [], 60.0)
            assert ready, "the flood never started"
            assert flood.stdout.readline().strip() == "go"
            with rig.client(timeout_s=30.0) as client:
                for i in range(legit_runs):
                    for verb in ("start", "stop"):
                        t0 = time.monotonic()
                        replies.append(client.send(verb, f"legit-{i}"))
                        round_trips.append(round(time.monotonic() - t0, 3))
                        during.append(flood.poll() is None)
                        time.sleep(0.3)
        finally:
            out, _ = flood.communicate(timeout=120)
        status = rig.status()
        alive = rig.alive
        code = rig.stop()
    counters = status["markers"]["counters"]
    sent = int(out.strip().split()[-1] if out.strip() else 0)
    readings = sorted(t for times in journal_readings(rig.journal_dir).values() for t in times)
    max_gap_s = max(((b - a) / 1e9 for a, b in itertools.pairwise(readings)),
                    default=0.0)
    flood_markers = [p for p in journal_points(rig.journal_dir, "wattd_marker")
                     if p.tags.get("source") == "127.0.0.2"]
    legit_ok = sum(r.ok for r in replies)
    seen = int(counters["datagrams"])
    return FaultResult(
        "udp_flood",
        injected={"datagrams_sent": sent, "flood_s": flood_s, "source": "127.0.0.2",
                  "legit_replies_during_flood": sum(during)},
        survived={"legit_replies_ok": legit_ok, "legit_messages": len(replies),
                  "legit_refusals": [str(r) for r in replies if not r.ok][:3],
                  "legit_round_trips_s": round_trips,
                  "datagrams_seen": seen, "refused_counts": {k: v for k, v in counters.items()
                                                             if v},
                  "max_reading_gap_s": round(max_gap_s, 3), "daemon_alive": alive},
        lost={"dropped_by_kernel_buffer": max(0, sent - seen),
              "rate_limited": counters["rate"], "legit_lost": len(replies) - legit_ok},
        checks={"benchmark_ran_inside_the_flood": any(during),
                "every_legit_marker_acknowledged": legit_ok == len(replies),
                "rate_limit_engaged": counters["rate"] > 0,
                "no_internal_errors": counters["internal_errors"] == 0,
                "flood_wrote_nothing": not flood_markers,
                "readings_kept_flowing": max_gap_s < 1.0,
                "daemon_alive": alive, "clean_exit": code == 0})


# -- journal at its size bound -------------------------------------------------------------

def journal_size_bound(tmp: Path, max_bytes: int, seconds: float) -> FaultResult:
    """Database down, unpaced readings: the journal hits `max_bytes`; the oldest
    undelivered data is dropped and counted, the disk stays under the bound. Then the
    database comes back and the daemon restarts: what stayed in the journal arrives."""
    vm = VictoriaMetrics(tmp / "vm")  # its port is chosen now; it starts later
    influx = _v2(vm, 5000)
    journal = {"max_bytes": max_bytes, "fsync_interval_s": 0.5}
    disk_max = 0
    try:
        with DaemonRig(tmp / "daemon", [{"name": "b", "driver": "simulated", "power_w": 80.0}],
                       simulate=True, unpaced=True, influxdb=influx, journal=journal) as rig:
            rig.start()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                disk_max = max(disk_max, journal_bytes(rig.journal_dir))
                time.sleep(0.02)
            status = rig.status()
            alive = rig.alive
            code = rig.stop()
        disk_max = max(disk_max, journal_bytes(rig.journal_dir))
        events = [e for e in rig.log_events() if e.get("event") == "journal_dropped_undelivered"]
        # The database returns; the daemon restarts (meter unplugged) and delivers the rest.
        vm.start()
        _deliver_rest(tmp, ["b"], influx, journal)
        remaining = journal_readings(rig.journal_dir)
        check = delivery_check(remaining,
                               _stored_when_settled(vm, sum(map(len, remaining.values())),
                                                    journal=remaining))
    finally:
        vm.close()
    jstat = status["journal"]
    written = int(status["pipeline"]["readings_written"])
    return FaultResult(
        "journal_size_bound",
        injected={"max_bytes": max_bytes, "database_down_s": round(seconds, 1),
                  "readings_written": written},
        survived={"daemon_alive": alive, "disk_max_bytes": disk_max,
                  "readings_left_in_journal": check["journal"],
                  "delivered_after_return": check["database"], "daemon_exit": code},
        lost={"undelivered_bytes_dropped": jstat["undelivered_bytes_dropped"],
              "readings_dropped": written - check["journal"],
              "error_log_lines": len(events)},
        checks={"dropped_counted": jstat["undelivered_bytes_dropped"] > 0,
                "dropped_logged_as_error": bool(events) and
                    all(e.get("level") == "error" for e in events),
                "disk_under_bound": disk_max <= max_bytes, "daemon_alive": alive,
                "clean_exit": code == 0,
                "rest_delivered": check["missing"] == 0 and check["duplicated"] == 0})


# -- realtime clock step through the injectable clock ---------------------------------------

class SteppedClock:
    """The system's clocks, with a realtime offset that a test steps."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def realtime_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_REALTIME) + self.offset_ns

    def boottime_ns(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def step(self, seconds: float) -> None:
        self.offset_ns += round(seconds * 1e9)


async def clock_step(tmp: Path, step_s: float = 30.0, run_s: float = 1.0) -> FaultResult:
    """In-process daemon on a SteppedClock: a control run, a run during which realtime
    steps forward by `step_s`, and one during which it steps back by `step_s`."""
    from wattd.config import load_config
    from wattd.daemon.app import Daemon

    port = free_udp_port()
    to = f"127.0.0.1:{port}"
    power_w = 100.0
    cfg_path = tmp / "wattd.yaml"
    cfg_path.write_text(json.dumps({
        "meters": [{"name": "c", "driver": "simulated", "power_w": power_w}],
        "markers": {"listen": [to]}, "journal": {"dir": str(tmp / "journal")},
        "clock": {"poll_interval_s": 0.2}, "log": {"format": "json", "level": "warning"}}))
    clock = SteppedClock()
    daemon = Daemon(load_config(str(cfg_path)), simulate=True, clock=clock)
    task = asyncio.create_task(daemon.run())

    def mark(verb: str, name: str) -> Any:
        with MarkerClient(to, timeout_s=15.0) as client:
            return client.send(verb, name)

    replies: dict[str, Any] = {}
    elapsed: dict[str, tuple[float, float]] = {}
    try:
        deadline = time.monotonic() + 30
        while not (await asyncio.to_thread(_ping, to)):
            if task.done() or time.monotonic() > deadline:
                raise AssertionError("in-process daemon did not answer")
        # Readings flowing (a start is bracketed by the reading before it): about 1 s of
        # them, however long a loaded machine takes.
        while daemon.pipeline.readings_in < 10:
            if task.done() or time.monotonic() > deadline + 30:
                raise AssertionError("in-process daemon: no readings")
            await asyncio.sleep(0.1)
        for name, step in (("control", 0.0), ("forward", step_s), ("backward", -step_s)):
            sent_start = time.monotonic()
            start = await asyncio.to_thread(mark, "start", name)
            started = time.monotonic()
            await asyncio.sleep(run_s / 2)
            clock.step(step)
            await asyncio.sleep(run_s / 2)
            sent_stop = time.monotonic()
            stop = await asyncio.to_thread(mark, "stop", name)
            # The true duration lies between these (a loaded machine stretches the sleeps).
            elapsed[name] = (sent_stop - started, time.monotonic() - sent_start)
            replies[name] = (start, stop)
            await asyncio.sleep(0.3)
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
    report = await asyncio.to_thread(_report, tmp / "journal")
    by_run = {r["run"]: r for r in report["runs"]}
    steps_seen = daemon.clock_service.health.status().get("steps")
    survived: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    for name, (start, stop) in replies.items():
        f = stop.fields
        energy = float(f.get("energy_j", "nan"))
        duration = float(f.get("duration_s", "nan"))
        flagged = f.get("clock_step") == "true"
        rep = by_run.get(name, {})
        rep_flag = bool(rep.get("flags", {}).get("clock_step"))
        survived[name] = {"energy_j": energy, "duration_s": duration, "clock_step": flagged,
                          "report_energy_j": rep.get("energy_j"),
                          "report_daemon_energy_j": rep.get("daemon_energy_j"),
                          "report_clock_step": rep_flag}
        expected_j = power_w * duration
        checks[f"{name}_acknowledged"] = start.ok and stop.ok
        checks[f"{name}_energy_not_negative_or_inflated"] = (
            energy > 0 and abs(energy - expected_j) <= 0.05 * expected_j
            and elapsed[name][0] - 0.05 <= duration <= elapsed[name][1] + 0.05)
        checks[f"{name}_flag_right"] = flagged == (name != "control")
        checks[f"{name}_report_flag_right"] = rep_flag == (name != "control")
        rep_j = rep.get("energy_j")
        checks[f"{name}_report_energy_not_negative"] = rep_j is not None and rep_j >= 0
    checks["control_report_equals_reply"] = abs(
        float(by_run.get("control", {}).get("energy_j", -1)) -
        survived["control"]["energy_j"]) <= 1e-6 * survived["control"]["energy_j"] + 1e-3
    return FaultResult(
        "clock_step",
        injected={"realtime_steps_s": [step_s, -step_s], "steps_detected": steps_seen},
        survived=survived, lost={"runs": 0}, checks=checks)


def _ping(to: str) -> bool:
    try:
        with MarkerClient(to, timeout_s=0.5, retries=1) as client:
            return client.send("ping").ok
    except Exception:
        return False


def run_all(tmp: Path, full: bool) -> list[FaultResult]:
    """Every scenario, full size (bench/faults.py --full) or reduced (CI size)."""
    size = {"cycles": 100, "flaps": 40, "kills": 20, "flood_s": 30.0,
            "bound": 8_000_000, "bound_s": 30.0} if full else \
           {"cycles": 5, "flaps": 2, "kills": 3, "flood_s": 5.0,
            "bound": 2_000_000, "bound_s": 4.0}
    results = []
    for name, fn in (
            ("unplug", lambda d: serial_unplug_replug(d, size["cycles"])),
            ("flapping", lambda d: database_flapping(d, size["flaps"])),
            ("sigkill", lambda d: daemon_sigkill(d, size["kills"])),
            ("flood", lambda d: udp_flood(d, size["flood_s"])),
            ("bound", lambda d: journal_size_bound(d, size["bound"], size["bound_s"])),
            ("clock", lambda d: asyncio.run(clock_step(d)))):
        directory = tmp / name
        directory.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        result = fn(directory)
        result.injected["elapsed_s"] = round(time.monotonic() - t0, 1)
        results.append(result)
        print(result, file=sys.stderr, flush=True)
    return results


__all__ = ["FaultResult", "clock_step", "daemon_sigkill", "database_flapping",
           "journal_size_bound", "run_all", "serial_unplug_replug", "udp_flood"]
