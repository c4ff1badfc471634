"""``wattd demo``: the Raspberry Pi experiment, time-compressed, with no hardware
and no database.

A daemon is started as a subprocess (``python -m wattd run --simulate``) with
one simulated BL0942 meter (a chip that measures power directly, so readings
follow the load at once) whose power follows a profile written for the
experiment. Real UDP markers then open and close the runs on the schedule the
profile was written for: an idle baseline, then the "python" and "rust"
servers, three repetitions each, interleaved. Beside the energy, each run
gets the load generator's results and the server's CPU samples
(``wattd.report.demo_load``, simulated). Finally the daemon is stopped and
the report is printed from its journal, and written as an HTML page.

Scaling. On a Raspberry Pi 3 the Python server answers 500 000 requests at
about 21.4 ms each (10 700 s), the Rust server at 5.7 ms (2 850 s); the Pi
draws about 2.7 W idle, ~4.2 W serving Python (one busy core) and ~4.8 W
serving Rust (all cores busy, for a much shorter time). The demo divides time
by ``time_scale`` (2000 by default: 5.35 s and 1.43 s runs) and the request
count with it (250 requests per run), so joules per request are the Pi's own
figures; power is not scaled. Each repetition varies its duration and power
by about 1.5 % and 1 %, and power fluctuates by about 3 % every 0.2 s, so the
statistics have something to say.
"""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wattd.errors import WattdError
from wattd.markers.wire import Reply
from wattd.report.demo_load import (
    SAMPLE_S,
    Busy,
    Channel,
    Probe,
    RunRef,
    load_results,
    open_channel,
)

PI_REQUESTS = 500_000
PI_MS_PER_REQUEST = {"python": 21.4, "rust": 5.7}
PI_WATTS = {"idle": 2.7, "python": 4.2, "rust": 4.8}
REPETITIONS = 3
DEFAULT_TIME_SCALE = 2000
METER = "pi"
STEP_S = 0.2  # power fluctuation step of the profile
LEAD_IN_S = 5.0  # idle before the first marker: the daemon starts meanwhile
IDLE_S = 4.0  # the baseline run
WARMUP_S = 0.3  # the server draws its load a little before the start marker...
COOLDOWN_S = 0.2  # ...and a little after the stop marker
GAP_S = 0.6  # idle between two workloads
DEMO_MARK = ".wattd-demo"  # marks a directory the demo made (and may clear)


class DemoError(WattdError):
    """The demo could not run (daemon did not start, a marker was refused)."""


@dataclass(slots=True, frozen=True)
class PlannedRun:
    name: str
    workload: str  # "idle", "python", "rust"
    start_s: float  # simulated time (s since the simulated meter started)
    stop_s: float
    power_w: float
    tags: dict[str, str]


@dataclass(slots=True, frozen=True)
class Plan:
    runs: list[PlannedRun]
    profile: str  # the simulated meter's power profile file (SPEC: t_s,power_w lines)
    requests: int
    time_scale: int
    seed: int = 3

    @property
    def end_s(self) -> float:
        return self.runs[-1].stop_s + COOLDOWN_S


def plan(time_scale: int = DEFAULT_TIME_SCALE, seed: int = 3) -> Plan:
    """The schedule and the matching power profile (deterministic for a seed)."""
    if time_scale <= 0 or PI_REQUESTS % time_scale:
        raise ValueError(f"time scale must divide {PI_REQUESTS}")
    rng = random.Random(seed)  # noqa: S311 - simulated noise, not security
    requests = PI_REQUESTS // time_scale
    runs = [PlannedRun("idle", "idle", LEAD_IN_S, LEAD_IN_S + IDLE_S, PI_WATTS["idle"],
                       {"workload": "idle"})]
    t = LEAD_IN_S + IDLE_S + GAP_S
    for rep in range(1, REPETITIONS + 1):
        for lang in ("python", "rust"):
            duration = (PI_REQUESTS * PI_MS_PER_REQUEST[lang] / 1000 / time_scale
                        * (1 + rng.gauss(0, 0.015)))
            power = PI_WATTS[lang] * (1 + rng.gauss(0, 0.01))
            start = t + WARMUP_S
            runs.append(PlannedRun(f"{lang}-{rep}", lang, round(start, 3),
                                   round(start + duration, 3), power,
                                   {"lang": lang, "requests": str(requests)}))
            t = start + duration + COOLDOWN_S + GAP_S
    return Plan(runs, _profile(runs, rng), requests, time_scale, seed)


def _profile(runs: list[PlannedRun], rng: random.Random) -> str:
    """Idle power with ~1 % fluctuation; each workload's power (~3 %) around its runs.
    Steps every STEP_S seconds, plus one exactly at every load edge."""
    loads = [(round(r.start_s - WARMUP_S, 3), round(r.stop_s + COOLDOWN_S, 3), r.power_w)
             for r in runs if r.workload != "idle"]
    end = runs[-1].stop_s + COOLDOWN_S + 2.0
    grid = {round(k * STEP_S, 3) for k in range(int(end / STEP_S) + 1)}
    points = sorted(grid | {x for a, b, _ in loads for x in (a, b)})
    lines = ["# wattd demo: simulated power of a Raspberry Pi 3 web server", "# t_s,power_w"]
    for t in points:
        level = next((p for a, b, p in loads if a <= t < b), None)
        watts = (PI_WATTS["idle"] * (1 + rng.gauss(0, 0.01)) if level is None
                 else level * (1 + rng.gauss(0, 0.03)))
        lines.append(f"{t:.3f},{watts:.4f}")
    return "\n".join(lines) + "\n"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(directory: Path, port: int) -> str:
    return (
        "# written by `wattd demo`\n"
        "meters:\n"
        f"  - name: {METER}\n"
        "    driver: bl0942              # simulated under `wattd run --simulate`\n"
        f"    port: {directory / 'no-such-serial-port'}\n"
        "    poll_interval_s: 0.1\n"
        f"    profile: {directory / 'profile.csv'}\n"
        "markers:\n"
        f"  listen: [\"127.0.0.1:{port}\"]\n"
        "journal:\n"
        f"  dir: {directory / 'journal'}\n"
        "  fsync_interval_s: 0.2\n"
        "log:\n"
        "  level: warning\n"
        "  format: json\n"
    )


def prepare_dir(directory: Path) -> None:
    """Create the demo directory, or clear the journal of a previous demo in it."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / DEMO_MARK).exists():
            raise DemoError(f"{directory} exists and was not made by wattd demo: "
                            "choose another --dir")
        journal = directory / "journal"
        if journal.is_dir():
            for entry in journal.iterdir():
                if entry.is_file():
                    entry.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARK).write_text("made by wattd demo\n", encoding="utf-8")


def _first_reading_ns(journal: Path, deadline: float) -> int:
    """Realtime stamp of the first reading: the simulated meter's time zero."""
    path = journal / "00000001.lp"
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
            for line in fh:
                if line.startswith(b"wattd_power,") and line.endswith(b"\n"):
                    return int(line.rsplit(b" ", 1)[1])
        time.sleep(0.05)
    raise DemoError("the simulated meter sent no reading in time")


class Daemon:
    """The daemon subprocess, stopped by its pid."""

    def __init__(self, directory: Path) -> None:
        self.log_path = directory / "daemon.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "wattd", "run", "--simulate", "-c",
             str(directory / "config.yaml")],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise DemoError(f"the daemon exited with status {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def run_demo(directory: Path, *, time_scale: int = DEFAULT_TIME_SCALE,
             say: Callable[[str], None] = print) -> Path:
    """Run the experiment; returns the journal directory. Raises DemoError."""
    from wattd.markers.client import MarkerClient, NoReplyError

    the_plan = plan(time_scale)
    directory = directory.resolve()
    prepare_dir(directory)
    (directory / "profile.csv").write_text(the_plan.profile, encoding="utf-8")
    port = _free_udp_port()
    (directory / "config.yaml").write_text(_config(directory, port), encoding="utf-8")
    journal = directory / "journal"
    say(f"wattd demo: a simulated Raspberry Pi 3 web server, time compressed "
        f"{time_scale}x: each run serves {the_plan.requests} requests instead of "
        f"{PI_REQUESTS:,} at the Pi's pace, so joules per request are the Pi's.")
    say(f"  daemon: python -m wattd run --simulate -c {directory / 'config.yaml'} "
        f"(markers on 127.0.0.1:{port}, log in {directory / 'daemon.log'})")
    daemon = Daemon(directory)
    channel: Channel | None = None
    try:
        with MarkerClient(f"127.0.0.1:{port}", timeout_s=8.0) as client:
            deadline = time.monotonic() + 30
            while True:
                daemon.check_alive()
                try:
                    if client.send("ping").ok:
                        break
                except NoReplyError:
                    pass
                if time.monotonic() > deadline:
                    raise DemoError("the daemon did not answer markers within 30 s")
            t0_ns = _first_reading_ns(journal, time.monotonic() + 20)
            late_s = (time.time_ns() - t0_ns) / 1e9 - (LEAD_IN_S - 0.5)
            if late_s > 0:
                raise DemoError(f"the daemon started {late_s:.1f} s too late for the "
                                "schedule (machine too busy?)")
            rng = random.Random(the_plan.seed + 1)  # noqa: S311 - simulated load
            probe = Probe(_busy(the_plan), rng, next_s=LEAD_IN_S - 1.0)
            channel = open_channel(client, ("127.0.0.1", port), journal)

            def at(t_s: float) -> None:
                _at(t0_ns, t_s, probe, channel)

            for run in the_plan.runs:
                at(run.start_s)
                daemon.check_alive()
                started = _expect_ok(client.send("start", run.name, tags=run.tags), run.name)
                ref = RunRef(run.name, int(started.fields.get("start_ns", time.time_ns())),
                             dict(run.tags))
                channel.run_started(ref)
                say(f"  start {run.name:<9} ({run.workload}, planned "
                    f"{run.stop_s - run.start_s:.2f} s at ~{run.power_w:.2f} W)")
                at(run.stop_s)
                reply = _expect_ok(client.send("stop", run.name), run.name)
                channel.run_stopped()
                f = reply.fields
                say(f"  stop  {run.name:<9} -> {f.get('energy_j', '?')} J in "
                    f"{f.get('duration_s', '?')} s, mean {f.get('mean_w', '?')} W "
                    "(the daemon's online result)")
                if run.workload != "idle":
                    duration = float(f.get("duration_s", run.stop_s - run.start_s))
                    values = load_results(run.workload, the_plan.requests, duration, rng)
                    channel.result(ref, values)
                    say(f"        {run.name:<9} -> {the_plan.requests} requests, "
                        f"{values['time_per_request_ms']:.2f} ms per request, p99 "
                        f"{values['latency_ms_p99']:.2f} ms (the simulated ab's results)")
            at(the_plan.end_s + SAMPLE_S)  # a CPU sample after the last stop brackets it
    finally:
        daemon.stop()
    if channel is not None:
        channel.close()
    return journal


def _busy(the_plan: Plan) -> list[Busy]:
    """When the simulated server works: around each run, as the power profile."""
    return [Busy(r.start_s - WARMUP_S, r.stop_s + COOLDOWN_S, r.workload)
            for r in the_plan.runs if r.workload != "idle"]


def _at(t0_ns: int, t_s: float, probe: Probe | None = None,
        channel: Channel | None = None) -> None:
    """Wait until simulated time t_s, sending the probe's samples as they fall due."""
    while True:
        now_s = (time.time_ns() - t0_ns) / 1e9
        if probe is not None and channel is not None:
            for at_s, values in probe.due(min(now_s, t_s)):
                channel.sample(t0_ns + round(at_s * 1e9), values)
        delay = t_s - now_s
        if delay <= 0:
            return
        wait = delay if probe is None else min(delay, max(0.0, probe.next_s - now_s))
        time.sleep(wait)


def _expect_ok(reply: Reply, name: str) -> Reply:
    if not reply.ok:
        raise DemoError(f"marker for {name} refused: {reply.code} {reply.text}")
    return reply


def loading_hints(journal: Path) -> list[str]:
    segments = sorted(p.name for p in journal.iterdir() if p.name.endswith((".lp", ".lp.gz")))
    first = segments[0] if segments else "00000001.lp"
    cat = f"zcat {journal / first} | curl --data-binary @-" if first.endswith(".gz") else (
        f"curl --data-binary @{journal / first}")
    return [
        f"The journal is in {journal} ({', '.join(segments)}).",
        f"Report it again any time:  wattd report --journal {journal} --baseline idle",
        f"  (as an HTML page:  wattd report --journal {journal} --baseline idle --html "
        "report.html)",
        "Load it into InfluxDB 1.x (and then Grafana) by hand, one segment at a time:",
        f"  {cat} 'http://localhost:8086/write?db=wattd'",
        "  (create the database first: curl -XPOST 'http://localhost:8086/query' "
        "--data-urlencode 'q=CREATE DATABASE wattd')",
        "Grafana dashboards for it:  wattd grafana export DIR --url http://localhost:8086 "
        "--database wattd",
    ]

