"""``wattd demo``'s load generator and server probe, simulated: the results ab
would print for each run (requests, time per request, a response-time
distribution) and the CPU samples ``wattd probe`` would send from the Pi.

The server's CPU follows the workload: the Python server keeps one core busy
(~98 %), the Rust one all four (~360 %), the idle server ~1 %, from a little
before each start marker to a little after its stop (as the power profile
does). Response times: Rust steady (a narrow log-normal around its time per
request), Python unstable (a wide one with a long tail), as in the seed's
article.

How they reach the daemon: the ``result`` and ``sample`` datagrams (SPEC 9.2,
9.3) when this wattd's marker protocol has those verbs; otherwise (a wattd
without them) the same points, exactly as SPEC 3 defines them, are written
into a journal segment of their own once the daemon has stopped. The choice
is made in one place, :func:`open_channel`.
"""

from __future__ import annotations

import math
import random
import socket
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

from wattd.journal.segments import list_segments
from wattd.lineprotocol import FieldValue, format_line
from wattd.markers import wire

HOST = "pi"
TARGET = "carddav"
SAMPLE_S = 0.25  # probe interval, simulated seconds
CORES = {"idle": 0.01, "python": 0.98, "rust": 3.6}
RSS_BYTES = {"idle": 30e6, "python": 62e6, "rust": 14e6}
# Spread (log-normal sigma) of the response times around the time per request.
LATENCY_SIGMA = {"python": 0.55, "rust": 0.08}
QUANTILES = (50, 66, 75, 80, 90, 95, 98, 99, 100)
PI_CORES = 4


@dataclass(slots=True, frozen=True)
class Busy:
    """The server's load between two simulated times."""

    begin_s: float
    end_s: float
    workload: str


def load_results(workload: str, requests: int, duration_s: float,
                 rng: random.Random) -> dict[str, float]:
    """What ab -c 1 would report for one run: the SPEC 9.2 keys, with the
    percentile table as latency_ms_qNN (q100 is the slowest request)."""
    tpr = duration_s * 1000.0 / requests
    sigma = LATENCY_SIGMA[workload] * (1 + rng.gauss(0, 0.05))
    mu = math.log(tpr) - sigma * sigma / 2  # so that the mean response time is tpr
    normal = NormalDist()
    table = {q: math.exp(mu + sigma * normal.inv_cdf(min(q, 99.9) / 100)) for q in QUANTILES}
    out = {"requests": float(requests), "failed": 0.0, "duration_s": duration_s,
           "rps": requests / duration_s, "time_per_request_ms": tpr, "latency_ms_mean": tpr,
           "latency_ms_p50": table[50], "latency_ms_p90": table[90],
           "latency_ms_p95": table[95], "latency_ms_p99": table[99],
           "latency_ms_max": table[100]}
    out.update({f"latency_ms_q{q}": round(ms, 3) for q, ms in table.items()})
    return {k: round(v, 6) for k, v in out.items()}


@dataclass(slots=True)
class Probe:
    """The simulated `wattd probe --match carddav`: cumulative CPU of the server."""

    busy: list[Busy]
    rng: random.Random
    next_s: float = 0.0
    cpu_s: float = 0.0

    def workload_at(self, t_s: float) -> str:
        return next((b.workload for b in self.busy if b.begin_s <= t_s < b.end_s), "idle")

    def due(self, until_s: float) -> list[tuple[float, dict[str, float]]]:
        """Samples up to simulated time ``until_s``: (time, sample fields)."""
        out = []
        while self.next_s <= until_s:
            t = self.next_s
            workload = self.workload_at(t - SAMPLE_S / 2)  # the interval just ended
            cores = CORES[workload] * (1 + self.rng.gauss(0, 0.03))
            self.cpu_s += cores * SAMPLE_S if t > 0 else 0.0
            out.append((t, {"cpu_s": round(self.cpu_s, 6), "cpu_pct": round(100 * cores, 3),
                            "rss_bytes": RSS_BYTES[workload] * (1 + self.rng.gauss(0, 0.01)),
                            "host_cpu_pct": round(100 * min(cores + 0.05, PI_CORES)
                                                  / PI_CORES, 3),
                            "procs": 1.0 if workload != "rust" else 5.0}))
            self.next_s = round(t + SAMPLE_S, 6)
        return out


@dataclass(slots=True)
class RunRef:
    name: str
    start_ns: int  # the daemon's start boundary (from the start reply)
    tags: dict[str, str]


@dataclass(slots=True)
class JournalChannel:
    """Without the result/sample verbs: keep the points, write them as one new
    journal segment once the daemon has stopped (SPEC 3 points, as the daemon
    would journal them)."""

    journal: Path
    lines: list[tuple[int, str]] = field(default_factory=list)
    open_run: RunRef | None = None

    def run_started(self, run: RunRef) -> None:
        self.open_run = run

    def run_stopped(self) -> None:
        self.open_run = None

    def result(self, run: RunRef, values: dict[str, float]) -> None:
        fields: dict[str, FieldValue] = {k: v for k, v in values.items()
                                         if not k.startswith("latency_ms_q")}
        fields["run_start_ns"] = run.start_ns
        tags = {k: v for k, v in run.tags.items() if k not in fields}
        tags.update(run=run.name, source="127.0.0.1", tool="demo")
        self.lines.append((run.start_ns, format_line("wattd_result", tags, fields,
                                                     run.start_ns)))
        for key, ms in values.items():
            if key.startswith("latency_ms_q"):
                head = {k: v for k, v in run.tags.items() if k != "ms"}
                head.update(run=run.name, q=key.removeprefix("latency_ms_q"))
                self.lines.append((run.start_ns, format_line(
                    "wattd_latency", head, {"ms": ms, "run_start_ns": run.start_ns},
                    run.start_ns)))

    def sample(self, t_ns: int, values: dict[str, float]) -> None:
        fields: dict[str, FieldValue] = dict(values)
        fields["procs"] = int(values["procs"])
        tags = {"host": HOST, "target": TARGET}
        if self.open_run is not None and t_ns >= self.open_run.start_ns:
            tags = {**self.open_run.tags, **tags, "run": self.open_run.name}
        self.lines.append((t_ns, format_line("wattd_cpu", tags, fields, t_ns)))

    def close(self) -> None:
        """After the daemon stopped: the points as the journal's newest segment."""
        if not self.lines:
            return
        segments = list_segments(self.journal)
        number = (segments[-1].number if segments else 0) + 1
        data = "".join(line + "\n" for _, line in sorted(self.lines, key=lambda x: x[0]))
        (self.journal / f"{number:08d}.lp").write_text(data, encoding="utf-8")


@dataclass(slots=True)
class DatagramChannel:
    """`result` and `sample` datagrams to the daemon (SPEC 9.2, 9.3)."""

    client: object  # wattd.markers.client.MarkerClient
    to: tuple[str, int]

    def run_started(self, run: RunRef) -> None:
        pass

    def run_stopped(self) -> None:
        pass

    def result(self, run: RunRef, values: dict[str, float]) -> None:
        from wattd.markers.client import MarkerClient

        assert isinstance(self.client, MarkerClient)
        items = [(k, _decimal(v)) for k, v in values.items()]
        # Two datagrams (they accumulate): the summary, then the percentile table.
        for part in ([kv for kv in items if not kv[0].startswith("latency_ms_q")],
                     [kv for kv in items if kv[0].startswith("latency_ms_q")]):
            if part:
                reply = self.client.send("result", run.name, tags=dict(part))
                if not reply.ok:
                    raise RuntimeError(f"result {run.name} refused: {reply.code} {reply.text}")

    def sample(self, t_ns: int, values: dict[str, float]) -> None:
        tags = {k: _decimal(v) for k, v in values.items()}
        tags["procs"] = str(int(values["procs"]))
        tags["target"] = TARGET
        data = wire.format_message("sample", HOST, tags=tags, ts_ns=t_ns,
                                   msg_id=f"s{t_ns}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(data, self.to)  # fire and forget: samples get no reply

    def close(self) -> None:
        pass


def _decimal(value: float) -> str:
    """A finite decimal number with no exponent, as the wire wants it."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


Channel = JournalChannel | DatagramChannel


def open_channel(client: object, to: tuple[str, int], journal: Path) -> Channel:
    """THE ONE SPOT choosing how results and samples reach the daemon: the datagrams
    when this wattd's marker protocol has the `result` and `sample` verbs, else
    the journal segment written after the daemon stops."""
    if "result" in wire.VERBS and "sample" in wire.VERBS:
        return DatagramChannel(client, to)
    return JournalChannel(journal)
