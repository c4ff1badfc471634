"""`wattd exec` end to end: a real daemon (simulated meter), real UDP, real
ab against a real Python HTTP server, the journal checked afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exec_rig import Rig
from tests.http_targets import python_server, require_tool
from wattd.markers.client import send_marker


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with Rig(tmp_path_factory.mktemp("exec")) as the_rig:
        yield the_rig


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with python_server(tmp_path_factory.mktemp("www")) as (base, _proc):
        yield base + "index.html"


def test_exec_ab_keeps_energy_results_and_distribution(rig: Rig, url: str) -> None:
    ab = require_tool("ab")
    out = rig.wattd("exec", "web", "--tag", "lang=py", "--to", rig.to, "--",
                    ab, "-n", "300", "-c", "2", url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("This is ApacheBench")  # the user still sees ab's output
    assert "Complete requests:      300" in out.stdout
    lines = [line for line in out.stderr.splitlines() if line.startswith("wattd: ")]
    assert lines[0] == "wattd: runs: web"
    assert any(line.startswith("wattd: web energy_j=") and " duration_s=" in line
               and " mean_w=" in line for line in lines), out.stderr
    assert any("web ab: requests=300 failed=0" in line for line in lines), out.stderr
    (run,) = rig.runs("web")
    assert run.fields["energy_j"] > 0
    assert run.tags["lang"] == "py"
    results = [p for p in rig.points("wattd_result") if p.tags["run"] == "web"]
    assert results
    merged = {k: v for p in results for k, v in p.fields.items()}
    assert merged["requests"] == 300.0
    assert merged["failed"] == 0.0
    assert merged["time_per_request_ms"] > 0
    assert merged["run_start_ns"] == run.fields["start_ns"]
    assert all(p.tags["tool"] == "ab" and p.tags["lang"] == "py" for p in results)
    latency = {int(p.tags["q"]): p.fields["ms"] for p in rig.points("wattd_latency")
               if p.tags["run"] == "web"}
    assert sorted(latency) == [50, 66, 75, 80, 90, 95, 98, 99, 100]
    assert merged["latency_ms_p99"] == latency[99]


def test_exec_failed_command_is_aborted_unless_keep_failed(rig: Rig, tmp_path: Path) -> None:
    out = rig.wattd("exec", "fails", "--to", rig.to, "--", "sh", "-c", "echo hi; exit 3")
    assert out.returncode == 3
    assert out.stdout == "hi\n"
    assert "fails aborted (command exited with status 3)" in out.stderr
    (run,) = rig.runs("fails")
    assert run.fields["aborted"] is True
    assert "energy_j" not in run.fields
    kept = rig.wattd("exec", "kept", "--keep-failed", "--to", rig.to, "--", "sh", "-c",
                     "exit 4")
    assert kept.returncode == 4
    (run,) = rig.runs("kept")
    assert run.fields["energy_j"] > 0


def test_exec_refused_start_never_runs_the_command(rig: Rig, tmp_path: Path) -> None:
    assert send_marker("start", "other", to=rig.to).ok
    try:
        flag = tmp_path / "ran"
        out = rig.wattd("exec", "refused", "--to", rig.to, "--", "touch", str(flag))
        assert out.returncode == 1
        assert "start refused: busy" in out.stderr
        assert not flag.exists()
    finally:
        assert send_marker("stop", "other", to=rig.to).ok
    missing = rig.wattd("exec", "nothing", "--to", rig.to, "--", "no-such-command-xyz")
    assert missing.returncode == 127
    assert rig.runs("nothing") == []


def test_exec_unanswered_start(tmp_path: Path) -> None:
    from tests.ports import free_port

    flag = tmp_path / "ran"
    out = subprocess.run([sys.executable, "-m", "wattd", "exec", "lost", "--to",
                          f"127.0.0.1:{free_port('udp')}", "--", "touch", str(flag)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1
    assert "no answer to start" in out.stderr
    assert not flag.exists()


def test_exec_ctrl_c_aborts_and_exits_130(rig: Rig) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "wattd", "exec", "hit", "--to", rig.to,
                             "--", "sleep", "30"], stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not rig.points("wattd_marker") or not any(
                p.tags["run"] == "hit" for p in rig.points("wattd_marker")):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: COMMAND and wattd
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "hit aborted (interrupted)" in err
    (run,) = rig.runs("hit")
    assert run.fields["aborted"] is True


def test_exec_repeat_idle_pause_and_config(rig: Rig) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WATTD_MARKER"}
    out = rig.wattd("exec", "rep", "--repeat", "2", "--idle", "0.5", "--pause", "0.2",
                    "-c", str(rig.config), "--", "true", env=env)
    assert out.returncode == 0, out.stderr
    assert "wattd: runs: rep-idle rep-1 rep-2" in out.stderr
    for name in ("rep-idle", "rep-1", "rep-2"):
        (run,) = rig.runs(name)
        assert run.fields["energy_j"] > 0
    idle = rig.runs("rep-idle")[0]
    assert idle.fields["duration_s"] == pytest.approx(0.5, abs=0.25)
    starts = [rig.runs(n)[0].fields["start_ns"] for n in ("rep-idle", "rep-1", "rep-2")]
    assert starts == sorted(starts)
    # the first non-zero status is the exit status; the repeats go on
    out = rig.wattd("exec", "st", "--repeat", "3", "--to", rig.to, "--", "sh", "-c",
                    'test -e "$0" && exit 0; touch "$0"; exit 5', str(rig.tmp / "st-flag"))
    assert out.returncode == 5
    assert [bool(rig.runs(f"st-{i}")[0].fields.get("aborted")) for i in (1, 2, 3)] == \
        [True, False, False]


def test_exec_bad_results_keep_the_energy(rig: Rig, tmp_path: Path, url: str) -> None:
    junk = tmp_path / "results.txt"
    junk.write_text("1449756000000,12,GET /,200,OK\n")
    out = rig.wattd("exec", "junk", "--results", str(junk), "--to", rig.to, "--", "true")
    assert out.returncode == 0
    assert "results from" in out.stderr
    assert "JTL without a header row" in out.stderr
    assert rig.runs("junk")[0].fields["energy_j"] > 0
    assert not [p for p in rig.points("wattd_result") if p.tags["run"] == "junk"]
    # an ab that stopped before its summary (nothing listens), kept with --keep-failed
    from tests.ports import free_port

    ab = require_tool("ab")
    out = rig.wattd("exec", "cut", "--keep-failed", "--to", rig.to, "--", ab, "-n", "5",
                    f"http://127.0.0.1:{free_port('tcp')}/")
    assert out.returncode != 0
    assert "ab output has no summary" in out.stderr
    assert rig.runs("cut")[0].fields["energy_j"] > 0
    assert not [p for p in rig.points("wattd_result") if p.tags["run"] == "cut"]


def test_exec_results_file_ab_csv_and_no_parse(rig: Rig, tmp_path: Path, url: str) -> None:
    ab = require_tool("ab")
    csv_path = tmp_path / "ab.csv"
    out = rig.wattd("exec", "csv", "--results", str(csv_path), "--to", rig.to, "--",
                    ab, "-q", "-n", "100", "-e", str(csv_path), url)
    assert out.returncode == 0, out.stderr
    latency = [p for p in rig.points("wattd_latency") if p.tags["run"] == "csv"]
    assert sorted(int(p.tags["q"]) for p in latency) == list(range(101))
    merged = {k: v for p in rig.points("wattd_result") if p.tags["run"] == "csv"
              for k, v in p.fields.items()}
    assert merged["requests"] == 100.0  # from ab's stdout, beside the file's distribution
    out = rig.wattd("exec", "raw", "--no-parse", "--to", rig.to, "--", ab, "-n", "20", url)
    assert out.returncode == 0
    assert "Complete requests:      20" in out.stdout
    assert not [p for p in rig.points("wattd_result") if p.tags["run"] == "raw"]
    assert rig.runs("raw")[0].fields["energy_j"] > 0


def test_mark_result_from_a_script(rig: Rig) -> None:
    assert send_marker("start", "scripted", to=rig.to).ok
    assert send_marker("stop", "scripted", to=rig.to).ok
    out = rig.wattd("mark", "result", "scripted", "--value", "requests=12", "--value",
                    "latency_ms_q50=3.5", "--to", rig.to)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok result scripted"
    (point,) = [p for p in rig.points("wattd_result") if p.tags["run"] == "scripted"]
    assert point.fields["requests"] == 12.0
    bad = rig.wattd("mark", "result", "scripted", "--value", "requests=many", "--to", rig.to)
    assert bad.returncode == 2
    assert "not a decimal number" in bad.stderr
    unknown = rig.wattd("mark", "result", "never-ran", "--value", "rps=1", "--to", rig.to)
    assert unknown.returncode == 1
    assert "error unknown" in unknown.stderr


def test_mark_and_status_take_the_address_from_c(rig: Rig) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WATTD_MARKER"}
    out = rig.wattd("mark", "event", "c-flag", "-c", str(rig.config), env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok event c-flag")
    status = rig.wattd("status", "--json", "-c", str(rig.config), env=env)
    assert status.returncode == 0, status.stderr
    assert '"markers"' in status.stdout
    bad = rig.wattd("mark", "event", "x", "-c", str(rig.tmp / "missing.yaml"), env=env)
    assert bad.returncode == 2
    assert "missing.yaml" in bad.stderr
