"""``wattd exec`` (SPEC 9.1): start, COMMAND, stop (or abort), result line,
parsed load-generator results as ``result`` messages.

COMMAND stays in wattd's process group (so a terminal's Ctrl-C and stdin
reach it as if it ran alone); wattd only notes a SIGINT and lets COMMAND
finish. If COMMAND ignores it, wattd forwards SIGINT after a second, then
SIGTERM, then SIGKILL. Every wattd line goes to stderr, prefixed ``wattd:``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from wattd.errors import MarkerInputError, WattdError

if TYPE_CHECKING:
    from wattd.loadgen import LoadResults
    from wattd.markers.client import MarkerClient
    from wattd.markers.wire import Reply

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_NOT_FOUND = 127
# Escalation for a COMMAND that ignores Ctrl-C: (seconds after it, signal).
_ESCALATION = ((1.0, signal.SIGINT), (10.0, signal.SIGTERM), (20.0, signal.SIGKILL))
_DATAGRAM_BUDGET = 1024 - 200  # verb, name, tool, ts, id and mac take the rest
_SHOWN = ("requests", "failed", "non_2xx", "rps", "time_per_request_ms", "latency_ms_p50",
          "latency_ms_p95", "latency_ms_p99", "latency_ms_max")


@dataclass(slots=True)
class ExecOptions:
    name: str
    command: list[str]
    tags: dict[str, str] = field(default_factory=dict)
    meter: str | None = None
    repeat: int = 1
    pause_s: float = 0.0
    idle_s: float | None = None
    results_file: str | None = None
    parse: bool = True
    keep_failed: bool = False


def say(text: str) -> None:
    print(f"wattd: {text}", file=sys.stderr, flush=True)


def run_names(opts: ExecOptions) -> list[str]:
    names = [f"{opts.name}-idle"] if opts.idle_s is not None else []
    if opts.repeat == 1:
        return [*names, opts.name]
    return names + [f"{opts.name}-{i}" for i in range(1, opts.repeat + 1)]


def result_chunks(results: LoadResults) -> list[dict[str, str]]:
    """The results as ``result`` key sets: <= 32 keys and < 1024 bytes each."""
    from wattd.markers.wire import MAX_FIELD_KEYS, format_number

    chunks: list[dict[str, str]] = []
    current: dict[str, str] = {"tool": results.tool}
    size = 0
    for key, value in results.values.items():
        text = format_number(value)
        cost = len(key) + len(text) + 2
        if len(current) >= MAX_FIELD_KEYS or size + cost > _DATAGRAM_BUDGET:
            chunks.append(current)
            current, size = {"tool": results.tool}, 0
        current[key] = text
        size += cost
    if len(current) > 1:
        chunks.append(current)
    return chunks


class _Interrupts:
    """SIGINT/SIGTERM while COMMAND runs: noted, not fatal to wattd."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.at: float = 0.0
        self.child: subprocess.Popen[bytes] | None = None
        self._old: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def __enter__(self) -> _Interrupts:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
            self.at = time.monotonic()
        if signum == signal.SIGTERM and self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)  # not from the terminal: pass it on

    @property
    def exit_status(self) -> int:
        return EXIT_INTERRUPTED if self.signal == signal.SIGINT else 128 + (self.signal or 2)

    def sleep(self, seconds: float) -> bool:
        """Sleep; False when interrupted."""
        deadline = time.monotonic() + seconds
        while self.signal is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.1))
        return False


class Runner:
    def __init__(self, opts: ExecOptions, client: MarkerClient) -> None:
        self.opts = opts
        self.client = client

    def _send(self, verb: str, name: str, tags: dict[str, str] | None = None) -> Reply | None:
        from wattd.markers.client import NoReplyError

        try:
            return self.client.send(verb, name, tags=tags, meter=self.opts.meter)
        except NoReplyError as exc:
            say(f"{verb} {name}: {exc}")
        except (OSError, MarkerInputError) as exc:
            say(f"{verb} {name}: {exc}")
        return None

    def _start(self, name: str) -> bool:
        reply = self._send("start", name, self.opts.tags)
        if reply is None:
            say(f"{name}: no answer to start: the command is not run (no unmeasured runs)")
            return False
        if not reply.ok:
            say(f"{name}: start refused: {reply.code} {reply.text}: the command is not run")
            return False
        return True

    def _stop(self, name: str) -> bool:
        reply = self._send("stop", name)
        if reply is None:
            return False
        if not reply.ok:
            say(f"{name}: stop refused: {reply.code} {reply.text}")
            return False
        say(" ".join([name, *(f"{k}={v}" for k, v in reply.fields.items())]))
        silent = reply.no_readings
        if silent:
            say(f"{name}: no reading from meter {', '.join(silent)} during the run: no energy "
                "for it (never 0 J; is its port delivering?)")
        return True

    def _abort(self, name: str, why: str) -> None:
        reply = self._send("abort", name)
        if reply is not None and reply.ok:
            say(f"{name} aborted ({why}): no result")
        elif reply is not None:
            say(f"{name}: abort refused: {reply.code} {reply.text}")

    def run(self) -> int:
        opts = self.opts
        if "/" not in opts.command[0] and shutil.which(opts.command[0]) is None:
            say(f"{opts.command[0]}: command not found (no run started)")
            return EXIT_NOT_FOUND
        names = run_names(opts)
        say("runs: " + " ".join(names))
        status = 0
        with _Interrupts() as interrupts:
            first_load = 1 if opts.idle_s is not None else 0
            for index, name in enumerate(names):
                if index > first_load and opts.pause_s > 0 and \
                        not interrupts.sleep(opts.pause_s):
                    return interrupts.exit_status
                if not self._start(name):
                    return EXIT_FAILED
                if interrupts.signal is not None:  # Ctrl-C while the start was on its way
                    self._abort(name, "interrupted")
                    return interrupts.exit_status
                if index < first_load:
                    assert opts.idle_s is not None
                    if not interrupts.sleep(opts.idle_s):
                        self._abort(name, "interrupted")
                        return interrupts.exit_status
                    if not self._stop(name):
                        return EXIT_FAILED
                    continue
                code, output = self._run_command(interrupts)
                interrupted = interrupts.signal is not None
                failed = code != 0 or interrupted
                if failed and not opts.keep_failed:
                    why = "interrupted" if interrupted else f"command exited with status {code}"
                    self._abort(name, why)
                else:
                    if not self._stop(name):
                        status = status or EXIT_FAILED
                    self._results(name, output)
                if interrupted:
                    return interrupts.exit_status
                if code != 0 and status == 0:
                    status = code
        return status

    def _run_command(self, interrupts: _Interrupts) -> tuple[int, str | None]:
        """Run COMMAND; (exit status as a shell gives it, its stdout when kept)."""
        from wattd.experiment.tee import Tee

        keep = self.opts.parse
        try:
            child = subprocess.Popen(self.opts.command,  # noqa: S603 - the user's own command
                                     stdout=subprocess.PIPE if keep else None)
        except OSError as exc:
            say(f"{self.opts.command[0]}: {exc.strerror or exc}")
            return EXIT_NOT_FOUND, None
        interrupts.child = child
        tee = Tee(os.dup(child.stdout.fileno())) if keep and child.stdout else None
        if child.stdout is not None:
            child.stdout.close()  # the tee holds its own descriptor
        step = 0
        while True:
            try:
                code = child.wait(0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if interrupts.signal is not None and step < len(_ESCALATION):
                after, sig = _ESCALATION[step]
                if time.monotonic() - interrupts.at >= after:
                    child.send_signal(sig)
                    step += 1
        interrupts.child = None
        output = None
        if tee is not None:
            tee.join()
            output = tee.text()
        return (128 - code if code < 0 else code), output

    def _results(self, name: str, output: str | None) -> None:
        from wattd.loadgen import ResultsError, detect

        if not self.opts.parse:
            return
        results: LoadResults | None = None
        source = "stdout"
        try:
            if self.opts.results_file:
                source = self.opts.results_file
                try:
                    with open(self.opts.results_file, encoding="utf-8", errors="replace") as fh:
                        text = fh.read()
                except OSError as exc:
                    raise ResultsError(f"cannot read: {exc.strerror}") from None
                results = detect.parse_results_file(text)
                if output is not None:  # the command's own stdout may add to the file's
                    with_stdout = _stdout_results(output)
                    if with_stdout is not None and with_stdout.tool == results.tool:
                        results.values = {**with_stdout.values, **results.values}
            elif output is not None:
                results = detect.parse_stdout(output)
        except ResultsError as exc:
            say(f"{name}: results from {source} not sent: {exc.detail} (the run's energy "
                "is kept)")
            return
        if results is None:
            return
        sent = 0
        for chunk in result_chunks(results):
            reply = self._send("result", name, chunk)
            if reply is None or not reply.ok:
                why = "no answer" if reply is None else f"{reply.code} {reply.text}"
                say(f"{name}: results refused: {why}")
                return
            sent += len(chunk) - 1
        shown = " ".join(f"{k}={results.values[k]:g}" for k in _SHOWN if k in results.values)
        quantiles = len(results.quantiles())
        say(f"{name} {results.tool}: {shown} ({sent} results, {quantiles} percentiles)")


def _stdout_results(output: str) -> LoadResults | None:
    from wattd.loadgen import ResultsError, detect

    try:
        return detect.parse_stdout(output)
    except ResultsError:
        return None


def execute(opts: ExecOptions, to: str | None, secret: bytes | None) -> int:
    from wattd.markers.client import MarkerClient

    try:
        client = MarkerClient(to, secret=secret)
    except (OSError, ValueError, WattdError) as exc:
        say(f"cannot reach the daemon at {to or 'the default address'}: {exc}")
        return EXIT_FAILED
    with client:
        return Runner(opts, client).run()


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    from wattd.errors import UsageError

    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag expects K=V, got {item!r}")
        tags[key] = value
    return tags
