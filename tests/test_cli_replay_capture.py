"""wattd replay / capture / simulate: SPEC 5 output shapes, exit codes, pty round trip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wattd.cli.main import main
from wattd.simulator.chip_hlw8032 import ChipModel
from wattd.simulator.meter import start_simulated_meter
from wattd.simulator.power_profile import ConstantPower
from wattd.sources.capture_file import capture_line

READING_KEYS = {"t_ns", "driver", "power_w", "voltage_v", "current_a", "apparent_va",
                "power_factor", "pf_count", "status"}


def chip_frames(n: int, power_w: float = 100.0, kv: float = 1.0) -> list[bytes]:
    chip = ChipModel(ConstantPower(power_w), kv=kv, seed=3)
    return [chip.frame_at(i * 0.104) for i in range(n)]


def test_replay_jsonl_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "cap.jsonl"
    lines = []
    for i, f in enumerate(chip_frames(10, kv=1.88)):
        t = 1_000_000_000_000 + i * 104_000_000
        lines += [capture_line(t - 30_000_000, f[:12]), capture_line(t, f[12:])]
    capture.write_text("".join(lines))
    assert main(["replay", str(capture), "--driver", "gb202"]) == 0
    out, err = capsys.readouterr()
    readings = [json.loads(line) for line in out.splitlines()]
    assert len(readings) == 10
    assert readings[0].keys() >= READING_KEYS
    assert readings[-1]["power_w"] == pytest.approx(100.0, rel=0.01)
    assert readings[-1]["driver"] == "gb202"
    assert readings[-1]["status"] == "ok"
    # Stamped like the daemon: last byte's read time minus the 55 ms frame wire time.
    assert readings[0]["t_ns"] == 1_000_000_000_000 - 55_000_000
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary == {"driver": "gb202", "frames_ok": 10, "dropped": {}, "skipped_bytes": 0}


def test_replay_raw_bytes_summary_counts_every_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = chip_frames(4)
    bad_sum = bytearray(frames[1])
    bad_sum[23] ^= 0xFF
    wrong_voltage = bytes.fromhex(  # Tasmota's "Wrong voltage" frame (valid checksum, 0.4 V)
        "555A02DB4007171D003D18038ECD4F0A602BEFEA6101022C")
    raw = b"\x00\x01" + frames[0] + bytes(bad_sum) + frames[2] + wrong_voltage + frames[3][:9]
    path = tmp_path / "raw.bin"
    path.write_bytes(raw)
    assert main(["replay", str(path), "--driver", "cse7766", "--format", "summary"]) == 0
    out, _ = capsys.readouterr()
    summary = json.loads(out)
    assert summary["driver"] == "cse7766"
    assert summary["frames_ok"] == 2
    assert summary["dropped"] == {"checksum": 1, "implausible": 1, "incomplete": 1}
    assert summary["skipped_bytes"] == 2 + 24 + 9


def test_replay_coefficients_scale_the_values(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "raw.bin"
    path.write_bytes(b"".join(chip_frames(3)))
    assert main(["replay", str(path), "--driver", "hlw8032", "--coefficient", "kv=1",
                 "--coefficient", "ki=2"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["power_w"] == pytest.approx(200.0, rel=0.01)


@pytest.mark.parametrize(("argv", "status"), [
    (["--coefficient", "kv"], 2),
    (["--coefficient", "volts=2"], 2),
    (["--driver", "nope"], 2),
])
def test_replay_usage_errors_exit_2(tmp_path: Path, argv: list[str], status: int) -> None:
    path = tmp_path / "raw.bin"
    path.write_bytes(b"")
    assert main(["replay", str(path), *argv]) == status


def test_replay_missing_file_exits_1(tmp_path: Path) -> None:
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 1


def test_capture_of_a_missing_port_exits_1(tmp_path: Path) -> None:
    assert main(["capture", str(tmp_path / "ttyNone"), "-o", str(tmp_path / "c.jsonl"),
                 "--seconds", "0.1"]) == 1


def test_capture_then_replay_round_trip_on_a_pty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = start_simulated_meter("gb202", power_w=100.0, link_path=tmp_path / "tty", seed=9)
    capture = tmp_path / "cap.jsonl"
    try:
        assert main(["capture", sim.port_path, "-o", str(capture), "--seconds", "1.0"]) == 0
    finally:
        sim.stop()
    lines = [json.loads(line) for line in capture.read_text().splitlines()]
    assert len(lines) >= 5
    assert all(set(line) == {"t_ns", "hex"} for line in lines)
    assert [line["t_ns"] for line in lines] == sorted(line["t_ns"] for line in lines)
    capsys.readouterr()
    assert main(["replay", str(capture), "--format", "summary"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_ok"] >= 5
    assert main(["replay", str(capture)]) == 0
    readings = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert readings[-1]["power_w"] == pytest.approx(100.0, rel=0.01)


def test_simulate_prints_the_port_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    link = tmp_path / "ttySim"
    proc = subprocess.Popen([sys.executable, "-m", "wattd", "simulate", "--power", "40",
                             "--link", str(link)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == str(link)
        assert os.path.islink(link)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.lexists(link)
